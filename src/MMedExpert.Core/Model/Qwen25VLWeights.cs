using MMedExpert.Core.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace MMedExpert.Core.Model;

/// <summary>
/// Maps checkpoint tensor names to the model's parameters and back. Published Qwen2.5-VL checkpoints use one of two
/// naming schemes: the original (visual.*, model.layers.*, model.embed_tokens.*, model.norm.*, lm_head.*) and the newer
/// one of transformers ≥ 4.52 (model.visual.*, model.language_model.*, lm_head.*). Both load; saving writes the original.
/// </summary>
public static class Qwen25VLWeights
{
    /// <summary>The model's own name (original scheme) of a checkpoint tensor name in either scheme.</summary>
    public static string CanonicalName(string checkpointName) =>
        checkpointName.StartsWith("model.visual.", StringComparison.Ordinal) ? checkpointName["model.".Length..]
        : checkpointName.StartsWith("model.language_model.", StringComparison.Ordinal) ? "model." + checkpointName["model.language_model.".Length..]
        : checkpointName;

    /// <summary>The name under the newer scheme (model.visual.*, model.language_model.*) of a model parameter name.</summary>
    public static string NewerSchemeName(string name) =>
        name.StartsWith("visual.", StringComparison.Ordinal) ? "model." + name
        : name.StartsWith("model.", StringComparison.Ordinal) ? "model.language_model." + name["model.".Length..]
        : name;

    /// <summary>
    /// Copies every tensor of <paramref name="checkpoint"/> into <paramref name="model"/>, converting to the parameter's
    /// dtype. Strict: a tensor with no parameter, a parameter with no tensor, or a shape mismatch is an error naming the
    /// tensors (and both shapes). A tied model ignores lm_head.weight (the reference does the same).
    /// </summary>
    public static void Load(Qwen25VLForConditionalGeneration model, Checkpoint checkpoint)
    {
        var parameters = model.state_dict();
        var loaded = new HashSet<string>();
        var unexpected = new List<string>();
        using var noGrad = no_grad();
        foreach (var name in checkpoint.Names.OrderBy(n => n, StringComparer.Ordinal))
        {
            string canonical = CanonicalName(name);
            if (model.Config.TieWordEmbeddings && canonical == "lm_head.weight") continue;
            if (!parameters.TryGetValue(canonical, out var target))
            {
                unexpected.Add(name);
                continue;
            }
            if (!loaded.Add(canonical))
                throw new ModelWeightsException($"{checkpoint.Source}: tensor '{name}' is stored twice (under both naming schemes)");
            var info = checkpoint.Info(name);
            if (!info.Shape.SequenceEqual(target.shape))
                throw new ModelWeightsException($"{checkpoint.Source}: tensor '{name}' has shape [{string.Join(", ", info.Shape)}] but the model expects [{string.Join(", ", target.shape)}]");
            using var source = checkpoint.Load(name, target.dtype);
            target.copy_(source);
        }
        if (unexpected.Count > 0)
            throw new ModelWeightsException($"{checkpoint.Source}: {unexpected.Count} unexpected tensor(s) the model has no parameter for: {Describe(unexpected)}");
        // Every parameter must come from the checkpoint; buffers (e.g. rotary tables) may be recomputed by the model.
        var missing = model.named_parameters().Select(p => p.name).Where(k => !loaded.Contains(k)).ToList();
        if (missing.Count > 0)
            throw new ModelWeightsException($"{checkpoint.Source}: {missing.Count} parameter(s) missing from the checkpoint: {Describe(missing)}");
    }

    /// <summary>The tensors to save, named in the original scheme (or the newer one), the tied lm_head left out.</summary>
    public static IReadOnlyList<KeyValuePair<string, Tensor>> StateToSave(Qwen25VLForConditionalGeneration model, bool newerScheme = false) =>
        model.state_dict()
            .Select(kv => new KeyValuePair<string, Tensor>(newerScheme ? NewerSchemeName(kv.Key) : kv.Key, kv.Value))
            .OrderBy(kv => kv.Key, StringComparer.Ordinal)
            .ToList();

    static string Describe(List<string> names) =>
        string.Join(", ", names.Take(12)) + (names.Count > 12 ? $", ... ({names.Count - 12} more)" : "");
}
