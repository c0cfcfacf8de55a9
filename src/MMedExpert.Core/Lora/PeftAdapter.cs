using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using MMedExpert.Algebra.Merge;
using MMedExpert.Core.IO;
using MMedExpert.Core.Merging;
using TorchSharp;
using static TorchSharp.torch;

namespace MMedExpert.Core.Lora;

/// <summary>
/// The one reader and writer of PEFT LoRA adapter folders (what <c>PeftModel.save_pretrained</c> writes): <c>adapter_config.json</c> and
/// <c>adapter_model.safetensors</c>. The state-dict keys are the wrapped model's parameter names with the adapter name
/// removed: <c>base_model.model.&lt;module path&gt;.lora_A.weight</c> (r×in) and <c>.lora_B.weight</c> (out×r), e.g.
/// <c>base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight</c> for the HF module
/// <c>model.layers.0.self_attn.q_proj</c>, whose base weight is <c>model.layers.0.self_attn.q_proj.weight</c>
/// (huggingface/peft docs/source/developer_guides/checkpoint.md, "PEFT checkpoint format": the keys always start with
/// "base_model.model." because PeftModel wraps LoraModel wraps the base model). Tensors are read one module at a time.
/// <see cref="Open"/> checks the folder's layout (files, key names, A/B pairs, ranks against r, dtypes); merging reads
/// deltas from it, <see cref="Load"/> attaches it to a model (checking that it fits), <see cref="Save"/> writes one.
/// Safetensors only (no pickled <c>adapter_model.bin</c>).
/// </summary>
public sealed class PeftAdapter : IDisposable
{
    public const string ConfigFileName = PeftAdapterConfig.FileName;
    public const string WeightsFileName = "adapter_model.safetensors";
    public const string KeyPrefix = "base_model.model.";
    public const string ASuffix = ".lora_A.weight";
    public const string BSuffix = ".lora_B.weight";

    readonly SafetensorsFile file;
    readonly Dictionary<string, (long Out, long In, int Rank)> modules;

    /// <summary>The adapter folder.</summary>
    public string Dir { get; }
    public string ConfigPath => Path.Combine(Dir, ConfigFileName);
    public string WeightsPath => file.Path;
    /// <summary>adapter_config.json as read (the merged adapter's config starts from it).</summary>
    public JsonObject Config { get; }
    public int Rank { get; }
    public double Alpha { get; }
    public bool UseRsLora { get; }
    /// <summary>The dtype of the stored factors (the merged adapter is written in it by default).</summary>
    public torch.ScalarType StoredDType { get; }
    /// <summary>Module paths (HF names, without the PEFT prefix), sorted.</summary>
    public IReadOnlyList<string> Modules { get; }

    PeftAdapter(string dir, JsonObject config, int rank, double alpha, bool rsLora, SafetensorsFile file,
        Dictionary<string, (long, long, int)> modules, torch.ScalarType dtype)
    {
        Dir = dir;
        Config = config;
        Rank = rank;
        Alpha = alpha;
        UseRsLora = rsLora;
        this.file = file;
        this.modules = modules;
        StoredDType = dtype;
        Modules = modules.Keys.OrderBy(m => m, ModuleOrder.Comparer).ToList();
    }

    public static string KeyA(string module) => KeyPrefix + module + ASuffix;
    public static string KeyB(string module) => KeyPrefix + module + BSuffix;

    /// <summary>Opens and validates an adapter folder: config fields, key names, A/B pairs, ranks and dtypes.</summary>
    public static PeftAdapter Open(string dir)
    {
        dir = Path.GetFullPath(dir);
        if (!Directory.Exists(dir)) throw new LoraException($"{dir}: adapter folder not found");
        string weightsPath = Path.Combine(dir, WeightsFileName);
        if (!File.Exists(weightsPath))
        {
            if (File.Exists(Path.Combine(dir, "adapter_model.bin")))
                throw new LoraException($"{dir}: only adapter_model.safetensors is supported (adapter_model.bin is a pickle; convert it with PEFT/safetensors)");
            throw new LoraException($"{weightsPath}: not found");
        }
        string configPath = Path.Combine(dir, ConfigFileName);
        if (!File.Exists(configPath)) throw new LoraException($"{configPath}: not found (a PEFT adapter folder holds {ConfigFileName} and {WeightsFileName})");
        JsonObject config;
        try { config = JsonNode.Parse(File.ReadAllText(configPath)) as JsonObject ?? throw new LoraException($"{configPath}: not a JSON object"); }
        catch (JsonException e) { throw new LoraException($"{configPath}: invalid JSON: {e.Message}", e); }

        string? peftType = StringField(config, "peft_type", configPath);
        if (peftType != null && peftType != "LORA") throw new LoraException($"{configPath}: peft_type '{peftType}' is not LORA");
        if (BoolField(config, "use_dora", configPath)) throw new LoraException($"{configPath}: use_dora is set; a DoRA delta is not scale·B·A and cannot be merged here");
        if (BoolField(config, "fan_in_fan_out", configPath)) throw new LoraException($"{configPath}: fan_in_fan_out (Conv1D layout) is not supported");
        int rank = (int)NumberField(config, "r", configPath, required: true)!.Value;
        if (rank < 1) throw new LoraException($"{configPath}: r must be positive, got {rank}");
        double alpha = NumberField(config, "lora_alpha", configPath, required: false) ?? 8.0; // PEFT's default lora_alpha
        bool rsLora = BoolField(config, "use_rslora", configPath);
        var rankPattern = PatternField(config, "rank_pattern", configPath);

        var file = SafetensorsFile.Open(weightsPath);
        try
        {
            var aShapes = new Dictionary<string, long[]>();
            var bShapes = new Dictionary<string, long[]>();
            torch.ScalarType? dtype = null;
            foreach (var e in file.Entries)
            {
                bool isA = e.Name.EndsWith(ASuffix, StringComparison.Ordinal), isB = e.Name.EndsWith(BSuffix, StringComparison.Ordinal);
                if (!e.Name.StartsWith(KeyPrefix, StringComparison.Ordinal) || !(isA || isB))
                    throw new LoraException($"{weightsPath}: tensor '{e.Name}' is not a LoRA factor ({KeyPrefix}<module>{ASuffix} or {BSuffix}); only LoRA A/B pairs are read (DoRA, embeddings and modules_to_save are not supported)");
                if (e.DType is not (SafetensorsDType.F32 or SafetensorsDType.F16 or SafetensorsDType.BF16 or SafetensorsDType.F64))
                    throw new LoraException($"{weightsPath}: tensor '{e.Name}' has dtype {e.DType}; LoRA factors must be floating point");
                if (e.Shape.Length != 2)
                    throw new LoraException($"{weightsPath}: tensor '{e.Name}' has shape [{string.Join(", ", e.Shape)}]; LoRA factors are matrices");
                dtype ??= e.DType.ToScalarType();
                string module = e.Name[KeyPrefix.Length..^(isA ? ASuffix.Length : BSuffix.Length)];
                (isA ? aShapes : bShapes)[module] = e.Shape;
            }
            var modules = new Dictionary<string, (long, long, int)>();
            foreach (var (module, a) in aShapes)
            {
                if (!bShapes.TryGetValue(module, out var b))
                    throw new LoraException($"{weightsPath}: tensor '{KeyA(module)}' has no matching '{KeyB(module)}'");
                int expected = PatternValue(rankPattern, module) is { } pr ? (int)pr : rank;
                if (a[0] != expected)
                    throw new LoraException($"{weightsPath}: tensor '{KeyA(module)}' has rank {a[0]} (shape [{a[0]}, {a[1]}]) but {ConfigFileName} says r = {expected}");
                if (b[1] != a[0])
                    throw new LoraException($"{weightsPath}: tensor '{KeyB(module)}' has shape [{b[0]}, {b[1]}], which does not match '{KeyA(module)}' [{a[0]}, {a[1]}] (B must be out×{a[0]})");
                modules[module] = (b[0], a[1], (int)a[0]);
            }
            foreach (var module in bShapes.Keys)
                if (!aShapes.ContainsKey(module))
                    throw new LoraException($"{weightsPath}: tensor '{KeyB(module)}' has no matching '{KeyA(module)}'");
            if (modules.Count == 0) throw new LoraException($"{weightsPath}: no LoRA tensors");
            return new PeftAdapter(dir, config, rank, alpha, rsLora, file, modules, dtype ?? torch.ScalarType.Float32);
        }
        catch { file.Dispose(); throw; }
    }

    public bool Contains(string module) => modules.ContainsKey(module);

    /// <summary>[out, in] of the module's ΔW.</summary>
    public long[] ShapeOf(string module) => modules.TryGetValue(module, out var m)
        ? new[] { m.Out, m.In }
        : throw new LoraException($"{WeightsPath}: no LoRA factors for module '{module}'");

    /// <summary>The module's LoRA scale: lora_alpha/r (alpha/√r with use_rslora), with rank_pattern and alpha_pattern applied.</summary>
    public double ScaleOf(string module)
    {
        var m = modules[module];
        double alpha = PatternValue(PatternField(Config, "alpha_pattern", ConfigPath), module) ?? Alpha;
        return LoraDelta.scale(alpha, m.Rank, UseRsLora);
    }

    /// <summary>The module's task vector ΔW = scale·B·A in float32 (out×in). Non-finite factors are rejected by name.</summary>
    public torch.Tensor LoadDelta(string module)
    {
        ShapeOf(module);
        using var scope = torch.NewDisposeScope();
        var (a, b) = LoadFactors(module);
        foreach (var (key, t) in new[] { (KeyA(module), a), (KeyB(module), b) })
            if (!t.isfinite().all().item<bool>())
                throw new LoraException($"{WeightsPath}: tensor '{key}' contains NaN or infinite values");
        return LoraDelta.delta(ScaleOf(module), b, a).MoveToOuterDisposeScope();
    }

    /// <summary>The module's factors A (r×in) and B (out×r) in float32 on the CPU; <paramref name="copy"/>: owning their memory.</summary>
    public (Tensor A, Tensor B) LoadFactors(string module, bool copy = false)
    {
        ShapeOf(module);
        var a = file.Load(KeyA(module), ScalarType.Float32, copy);
        try { return (a, file.Load(KeyB(module), ScalarType.Float32, copy)); }
        catch { a.Dispose(); throw; }
    }

    public void Dispose() => file.Dispose();

    /// <summary>
    /// Writes adapter <paramref name="name"/> to <paramref name="dir"/> (atomically: the folder appears complete or not
    /// at all). Adapters from a base-changing init are written as their change from the ORIGINAL base, like PEFT's
    /// <c>path_initial_model_for_weight_conversion</c>: ΔW = B·A − B₀·A₀ = [B | −B₀]·[A ; A₀], a rank-2r LoRA with
    /// alpha doubled (×√2 with rsLoRA) so the scale is unchanged, and <c>init_lora_weights = true</c>.
    /// <paramref name="baseModelNameOrPath"/> replaces the config's base_model_name_or_path (e.g. `mmx export` naming the
    /// base the adapter was loaded on).
    /// </summary>
    public static void Save(LoraAdapters adapters, string name, string dir, string? baseModelNameOrPath = null)
    {
        var config = adapters.Config(name);
        if (baseModelNameOrPath is not null) config = config with { BaseModelNameOrPath = baseModelNameOrPath };
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
                tensors.Add(new(KeyA(w.ModulePath), a.cpu().contiguous()));
                tensors.Add(new(KeyB(w.ModulePath), b.cpu().contiguous()));
            }
        }
        AtomicFile.WriteDirectory(dir, tmp =>
        {
            Safetensors.Save(Path.Combine(tmp, WeightsFileName), tensors, new Dictionary<string, string> { ["format"] = "pt" });
            File.WriteAllText(Path.Combine(tmp, ConfigFileName),
                json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        });
    }

    /// <summary>
    /// Loads a PEFT LoRA folder as adapter <paramref name="name"/> (inactive). Beyond <see cref="Open"/>'s checks, the
    /// config must be one whose math is implemented here (<see cref="PeftAdapterConfig.Read"/>), and the adapter must fit
    /// the model: the modules the config targets (PEFT's rules: target_modules minus exclude_modules) are exactly the
    /// modules with tensors in the file, each an adaptable linear layer whose size fits the factors.
    /// <paramref name="modulePathMap"/> maps a module path of the file to the model's (for checkpoints whose module
    /// naming differs).
    /// </summary>
    public static LoraConfig Load(LoraAdapters adapters, string dir, string name, Func<string, string>? modulePathMap = null)
    {
        using var adapter = Open(dir);
        string weightsPath = adapter.WeightsPath, configPath = adapter.ConfigPath;
        var loaded = PeftAdapterConfig.Read(configPath);
        var config = loaded.Config;
        if (adapters.Contains(name)) throw new LoraException($"an adapter named '{name}' already exists");

        var paths = adapter.Modules.ToDictionary(m => modulePathMap?.Invoke(m) ?? m, m => m);
        bool Expected(string path) =>
            config.TargetModules.Matches(path) && !(loaded.ExcludeModules?.Matches(path) ?? false);
        foreach (var (path, module) in paths)
        {
            if (!adapters.LinearPaths.Contains(path))
                throw new LoraException($"{weightsPath}: tensor '{KeyA(module)}' is for module '{path}', which is not an adaptable linear layer of the model");
            if (!Expected(path))
                throw new LoraException($"{weightsPath}: tensor '{KeyA(module)}' is for module '{path}', which {configPath} does not target");
        }
        foreach (var path in adapters.LinearPaths.OrderBy(p => p, StringComparer.Ordinal))
            if (Expected(path) && !paths.ContainsKey(path))
                throw new LoraException($"{weightsPath}: tensor '{KeyA(path)}' is missing ({configPath} targets module '{path}')");

        var weights = new List<LoraWeights>();
        try
        {
            foreach (var (path, module) in paths.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            {
                var linear = adapters.Linear(path);
                var shape = adapter.ShapeOf(module);
                if (shape[1] != linear.InFeatures)
                    throw new LoraException($"{weightsPath}: tensor '{KeyA(module)}' has shape [{config.R}, {shape[1]}], " +
                                            $"expected [{config.R}, {linear.InFeatures}] (the layer's size and r = {config.R} from {configPath})");
                if (shape[0] != linear.OutFeatures)
                    throw new LoraException($"{weightsPath}: tensor '{KeyB(module)}' has shape [{shape[0]}, {config.R}], " +
                                            $"expected [{linear.OutFeatures}, {config.R}] (the layer's size and r = {config.R} from {configPath})");
                var device = linear.weight.device;
                var (a, b) = adapter.LoadFactors(module, copy: true);
                using (a)
                using (b)
                using (var ad = a.to(device))
                using (var bd = b.to(device))
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


    // PEFT matches rank_pattern/alpha_pattern keys as regular expressions against the end of the module name:
    // re.match(rf"(.*\.)?({key})$", name), first matching key in order.
    static double? PatternValue(IReadOnlyList<(string Key, double Value)> pattern, string module)
    {
        foreach (var (key, value) in pattern)
            if (Regex.IsMatch(module, $@"^(.*\.)?({key})$")) return value;
        return null;
    }

    static IReadOnlyList<(string, double)> PatternField(JsonObject config, string field, string path)
    {
        if (config[field] is not JsonObject map) return Array.Empty<(string, double)>();
        var list = new List<(string, double)>();
        foreach (var (key, value) in map)
        {
            if (value is not JsonValue v || !v.TryGetValue<double>(out var d))
                throw new LoraException($"{path}: {field}.{key} must be a number");
            list.Add((key, d));
        }
        return list;
    }

    static string? StringField(JsonObject config, string field, string path) => config[field] switch
    {
        null => null,
        JsonValue v when v.TryGetValue<string>(out var s) => s,
        _ => throw new LoraException($"{path}: {field} must be a string"),
    };

    static bool BoolField(JsonObject config, string field, string path) => config[field] switch
    {
        null => false,
        JsonValue v when v.TryGetValue<bool>(out var b) => b,
        _ => throw new LoraException($"{path}: {field} must be true or false"),
    };

    static double? NumberField(JsonObject config, string field, string path, bool required) => config[field] switch
    {
        null when required => throw new LoraException($"{path}: {field} is missing"),
        null => null,
        JsonValue v when v.TryGetValue<double>(out var d) && double.IsFinite(d) => d,
        _ => throw new LoraException($"{path}: {field} must be a number"),
    };
}
