using MMedExpert.Core.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace MMedExpert.Core.Model;

/// <summary>
/// Creating, loading and saving Qwen2.5-VL models in the Hugging Face layout: a folder with config.json and
/// model.safetensors (or model-0000i-of-0000n.safetensors shards + model.safetensors.index.json), beside which the
/// tokenizer.json and preprocessor_config.json of the checkpoint usually live.
/// </summary>
public static class Qwen25VL
{
    /// <summary>Files copied along with the weights when saving, when the source folder has them.</summary>
    public static readonly IReadOnlyList<string> CompanionFiles = new[]
    {
        "tokenizer.json", "tokenizer_config.json", "preprocessor_config.json", "chat_template.json", "generation_config.json",
        "vocab.json", "merges.txt",
    };

    /// <summary>Builds the model (in evaluation mode) with parameters in <paramref name="dtype"/>.</summary>
    public static Qwen25VLForConditionalGeneration Create(Qwen25VLConfig config, ScalarType dtype = ScalarType.Float32)
    {
        var model = new Qwen25VLForConditionalGeneration(config, dtype);
        model.eval();
        return model;
    }

    /// <summary>
    /// A model with the reference's initialisation, reproducible from <paramref name="seed"/>: weights of linear,
    /// convolution and embedding layers ~ N(0, 0.02²), biases 0, norm scales 1.
    /// </summary>
    public static Qwen25VLForConditionalGeneration CreateRandom(Qwen25VLConfig config, long seed, ScalarType dtype = ScalarType.Float32)
    {
        var model = Create(config, dtype);
        var generator = new Generator((ulong)seed);
        using var noGrad = no_grad();
        foreach (var (name, p) in model.named_parameters().OrderBy(kv => kv.name, StringComparer.Ordinal))
        {
            if (name.EndsWith("norm.weight", StringComparison.Ordinal) || name.EndsWith("layernorm.weight", StringComparison.Ordinal)
                || name.EndsWith("ln_q.weight", StringComparison.Ordinal) || name.Contains(".norm1.") || name.Contains(".norm2."))
                p.fill_(1.0);
            else if (name.EndsWith(".bias", StringComparison.Ordinal))
                p.zero_();
            else if (p.dtype == ScalarType.Float32)
                p.normal_(0.0, 0.02, generator);
            else
            {
                // Drawn in fp32 then rounded, so a bf16 model is the rounding of the fp32 model of the same seed.
                using var draw = empty(p.shape, ScalarType.Float32).normal_(0.0, 0.02, generator);
                p.copy_(draw);
            }
        }
        return model;
    }

    /// <summary>Loads config.json and the weights of a Hugging Face folder (either naming scheme), converting to <paramref name="dtype"/>.</summary>
    public static Qwen25VLForConditionalGeneration Load(string dir, ScalarType dtype = ScalarType.Float32)
    {
        if (!Directory.Exists(dir)) throw new ModelWeightsException($"{dir}: model folder not found");
        var config = Qwen25VLConfig.Load(dir);
        using var checkpoint = Checkpoint.Open(dir);
        var model = Create(config, dtype);
        try
        {
            Qwen25VLWeights.Load(model, checkpoint);
        }
        catch
        {
            model.Dispose();
            throw;
        }
        return model;
    }

    /// <summary>
    /// Writes <paramref name="model"/> to <paramref name="dir"/> in the Hugging Face layout (atomically: the folder appears
    /// complete or not at all): config.json, the weights (sharded above <paramref name="maxShardBytes"/>), and the
    /// <see cref="CompanionFiles"/> found in <paramref name="companionsFrom"/> (e.g. the folder the model was loaded from).
    /// </summary>
    /// <paramref name="dtype"/> stores the weights in another dtype (e.g. bf16 to halve a shipped checkpoint).
    public static void Save(Qwen25VLForConditionalGeneration model, string dir, string? companionsFrom = null,
        long maxShardBytes = 5L << 30, bool newerScheme = false, ScalarType? dtype = null)
    {
        using var scope = NewDisposeScope();
        var state = Qwen25VLWeights.StateToSave(model, newerScheme);
        if (dtype is { } d) state = state.Select(kv => new KeyValuePair<string, Tensor>(kv.Key, kv.Value.to_type(d))).ToList();
        AtomicFile.WriteDirectory(dir, tmp =>
        {
            Checkpoint.Save(tmp, state, maxShardBytes);
            model.Config.Save(Path.Combine(tmp, "config.json"));
            if (companionsFrom is not null)
                foreach (var name in CompanionFiles)
                {
                    string source = Path.Combine(companionsFrom, name);
                    if (File.Exists(source)) File.Copy(source, Path.Combine(tmp, name));
                }
        });
    }
}
