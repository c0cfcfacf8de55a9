using System.Text.Json;
using MMedExpert.Core.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace MMedExpert.Core.Lora;

/// <summary>
/// LoRA adapters in PEFT's folder layout: <c>adapter_model.safetensors</c> holding
/// <c>base_model.model.&lt;module path&gt;.lora_A.weight</c> (r×in) and <c>.lora_B.weight</c> (out×r), the adapter name
/// removed from the keys, and <c>adapter_config.json</c>. Safetensors only (no pickled <c>adapter_model.bin</c>).
/// </summary>
public static class PeftAdapter
{
    public const string WeightsFileName = "adapter_model.safetensors";
    public const string KeyPrefix = "base_model.model.";
    const string ASuffix = ".lora_A.weight", BSuffix = ".lora_B.weight";

    /// <summary>
    /// Writes adapter <paramref name="name"/> to <paramref name="dir"/> (atomically: the folder appears complete or not
    /// at all). Adapters from a base-changing init are written as their change from the ORIGINAL base, like PEFT's
    /// <c>path_initial_model_for_weight_conversion</c>: ΔW = B·A − B₀·A₀ = [B | −B₀]·[A ; A₀], a rank-2r LoRA with
    /// alpha doubled (×√2 with rsLoRA) so the scale is unchanged, and <c>init_lora_weights = true</c>.
    /// </summary>
    public static void Save(LoraAdapters adapters, string name, string dir)
    {
        var config = adapters.Config(name);
        var modules = adapters.Modules(name);
        bool converted = modules.Any(w => w.InitialA is not null);
        if (converted && !modules.All(w => w.InitialA is not null))
            throw new LoraException($"adapter '{name}': some modules have initial factors and some do not");
        int r = modules[0].Rank;
        double alpha = config.Alpha;
        if (converted)
        {
            r *= 2;
            alpha = config.UseRsLora ? alpha * Math.Sqrt(2) : alpha * 2;
        }
        string init = converted ? "true" : config.Init == LoraInit.Gaussian ? "gaussian" : "true";
        // Decided by what the adapter covers, not by the config's flag: an adapter loaded from a file (whose config
        // keeps the file's exclude rule separately) must be written back with the same exclusion.
        bool excludeVision = !modules.Any(w => TargetModules.IsVision(w.ModulePath))
                             && adapters.LinearPaths.Any(p => TargetModules.IsVision(p) && config.TargetModules.Matches(p));
        var json = PeftAdapterConfig.ToJson(config, r, alpha, init, excludeVision);

        using var scope = NewDisposeScope();
        var tensors = new List<KeyValuePair<string, Tensor>>();
        using (no_grad())
        {
            foreach (var w in modules)
            {
                Tensor a = w.A.detach(), b = w.B.detach();
                if (converted)
                {
                    a = cat(new[] { a, w.InitialA! }, 0);
                    b = cat(new[] { b, w.InitialB!.neg() }, 1);
                }
                tensors.Add(new(KeyPrefix + w.ModulePath + ASuffix, a.cpu().contiguous()));
                tensors.Add(new(KeyPrefix + w.ModulePath + BSuffix, b.cpu().contiguous()));
            }
        }
        AtomicFile.WriteDirectory(dir, tmp =>
        {
            Safetensors.Save(Path.Combine(tmp, WeightsFileName), tensors, new Dictionary<string, string> { ["format"] = "pt" });
            File.WriteAllText(Path.Combine(tmp, PeftAdapterConfig.FileName),
                json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        });
    }

    /// <summary>
    /// Loads a PEFT LoRA folder as adapter <paramref name="name"/> (inactive). The modules the config targets (PEFT's
    /// rules: target_modules minus exclude_modules) must be exactly the modules with tensors in the file, with shapes
    /// fitting the layers and the config's r. <paramref name="modulePathMap"/> maps a module path of the file to the
    /// model's (for checkpoints whose module naming differs).
    /// </summary>
    public static LoraConfig Load(LoraAdapters adapters, string dir, string name, Func<string, string>? modulePathMap = null)
    {
        string weightsPath = Path.Combine(dir, WeightsFileName);
        string configPath = Path.Combine(dir, PeftAdapterConfig.FileName);
        if (!File.Exists(weightsPath))
        {
            if (File.Exists(Path.Combine(dir, "adapter_model.bin")))
                throw new LoraException($"{dir}: only adapter_model.safetensors is supported (adapter_model.bin is a pickle; convert it with PEFT/safetensors)");
            throw new LoraException($"{weightsPath}: file not found");
        }
        var loaded = PeftAdapterConfig.Read(configPath);
        var config = loaded.Config;
        if (adapters.Contains(name)) throw new LoraException($"an adapter named '{name}' already exists");

        using var file = SafetensorsFile.Open(weightsPath);
        var pairs = new Dictionary<string, (string? A, string? B)>();
        foreach (var key in file.Names)
        {
            bool isA = key.EndsWith(ASuffix, StringComparison.Ordinal), isB = key.EndsWith(BSuffix, StringComparison.Ordinal);
            if (!key.StartsWith(KeyPrefix, StringComparison.Ordinal) || !(isA || isB))
                throw new LoraException($"{weightsPath}: tensor '{key}' is not a LoRA factor " +
                                        $"('{KeyPrefix}<module>{ASuffix}' or '{BSuffix}'; DoRA, embeddings and modules_to_save are not supported)");
            string filePath = key[KeyPrefix.Length..^(isA ? ASuffix.Length : BSuffix.Length)];
            string path = modulePathMap?.Invoke(filePath) ?? filePath;
            pairs.TryGetValue(path, out var p);
            pairs[path] = isA ? (key, p.B) : (p.A, key);
        }

        bool Expected(string path) =>
            config.TargetModules.Matches(path) && !(loaded.ExcludeModules?.Matches(path) ?? false);
        foreach (var (path, (a, b)) in pairs)
        {
            if (!adapters.LinearPaths.Contains(path))
                throw new LoraException($"{weightsPath}: tensor '{a ?? b}' is for module '{path}', which is not an adaptable linear layer of the model");
            if (!Expected(path))
                throw new LoraException($"{weightsPath}: tensor '{a ?? b}' is for module '{path}', which {configPath} does not target");
            if (a is null) throw new LoraException($"{weightsPath}: tensor '{b![..^BSuffix.Length]}{ASuffix}' is missing (its lora_B is present)");
            if (b is null) throw new LoraException($"{weightsPath}: tensor '{a[..^ASuffix.Length]}{BSuffix}' is missing (its lora_A is present)");
        }
        foreach (var path in adapters.LinearPaths.OrderBy(p => p, StringComparer.Ordinal))
            if (Expected(path) && !pairs.ContainsKey(path))
                throw new LoraException($"{weightsPath}: tensor '{KeyPrefix}{path}{ASuffix}' is missing ({configPath} targets module '{path}')");
        if (pairs.Count == 0) throw new LoraException($"{weightsPath}: no LoRA tensors");

        var weights = new List<LoraWeights>();
        try
        {
            foreach (var (path, (aKey, bKey)) in pairs.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            {
                var linear = adapters.Linear(path);
                CheckShape(file, weightsPath, aKey!, new[] { (long)config.R, linear.InFeatures }, config.R, configPath);
                CheckShape(file, weightsPath, bKey!, new[] { linear.OutFeatures, (long)config.R }, config.R, configPath);
                var device = linear.weight.device;
                using var a = file.Load(aKey!, ScalarType.Float32, copy: true);
                using var b = file.Load(bKey!, ScalarType.Float32, copy: true);
                using var ad = a.to(device);
                using var bd = b.to(device);
                weights.Add(new LoraWeights(name, path, ad, bd, null, null, config.Scale, config.Dropout));
            }
            adapters.Attach(name, config, weights);
        }
        catch
        {
            foreach (var w in weights) w.Dispose();
            throw;
        }
        return config;
    }

    static void CheckShape(SafetensorsFile file, string weightsPath, string key, long[] expected, int r, string configPath)
    {
        var info = file.Info(key);
        if (!info.Shape.SequenceEqual(expected))
            throw new LoraException($"{weightsPath}: tensor '{key}' has shape [{string.Join(", ", info.Shape)}], " +
                                    $"expected [{string.Join(", ", expected)}] (the layer's size and r = {r} from {configPath})");
        if (info.DType is not (SafetensorsDType.F64 or SafetensorsDType.F32 or SafetensorsDType.F16 or SafetensorsDType.BF16))
            throw new LoraException($"{weightsPath}: tensor '{key}' has dtype {info.DType}; LoRA factors must be floating point");
    }
}
