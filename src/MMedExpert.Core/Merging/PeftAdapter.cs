using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using MMedExpert.Algebra.Merge;
using MMedExpert.Core.IO;
using TorchSharp;

namespace MMedExpert.Core.Merging;

/// <summary>
/// A PEFT LoRA adapter folder (what <c>PeftModel.save_pretrained</c> writes): <c>adapter_config.json</c> and
/// <c>adapter_model.safetensors</c>. The state-dict keys are the wrapped model's parameter names with the adapter name
/// removed: <c>base_model.model.&lt;module path&gt;.lora_A.weight</c> (r×in) and <c>.lora_B.weight</c> (out×r), e.g.
/// <c>base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight</c> for the HF module
/// <c>model.layers.0.self_attn.q_proj</c>, whose base weight is <c>model.layers.0.self_attn.q_proj.weight</c>
/// (huggingface/peft docs/source/developer_guides/checkpoint.md, "PEFT checkpoint format": the keys always start with
/// "base_model.model." because PeftModel wraps LoraModel wraps the base model). Tensors are read one module at a time.
/// </summary>
public sealed class PeftAdapter : IDisposable
{
    public const string ConfigFileName = "adapter_config.json";
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
        if (!Directory.Exists(dir)) throw new MergeException($"{dir}: adapter folder not found");
        string configPath = Path.Combine(dir, ConfigFileName);
        if (!File.Exists(configPath)) throw new MergeException($"{configPath}: not found (a PEFT adapter folder holds {ConfigFileName} and {WeightsFileName})");
        JsonObject config;
        try { config = JsonNode.Parse(File.ReadAllText(configPath)) as JsonObject ?? throw new MergeException($"{configPath}: not a JSON object"); }
        catch (JsonException e) { throw new MergeException($"{configPath}: invalid JSON: {e.Message}", e); }

        string? peftType = StringField(config, "peft_type", configPath);
        if (peftType != null && peftType != "LORA") throw new MergeException($"{configPath}: peft_type '{peftType}' is not LORA");
        if (BoolField(config, "use_dora", configPath)) throw new MergeException($"{configPath}: use_dora is set; a DoRA delta is not scale·B·A and cannot be merged here");
        if (BoolField(config, "fan_in_fan_out", configPath)) throw new MergeException($"{configPath}: fan_in_fan_out (Conv1D layout) is not supported");
        int rank = (int)NumberField(config, "r", configPath, required: true)!.Value;
        if (rank < 1) throw new MergeException($"{configPath}: r must be positive, got {rank}");
        double alpha = NumberField(config, "lora_alpha", configPath, required: false) ?? 8.0; // PEFT's default lora_alpha
        bool rsLora = BoolField(config, "use_rslora", configPath);
        var rankPattern = PatternField(config, "rank_pattern", configPath);

        string weightsPath = Path.Combine(dir, WeightsFileName);
        if (!File.Exists(weightsPath)) throw new MergeException($"{weightsPath}: not found");
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
                    throw new MergeException($"{weightsPath}: tensor '{e.Name}' is not a LoRA factor ({KeyPrefix}<module>{ASuffix} or {BSuffix}); only LoRA A/B pairs can be merged");
                if (e.DType is not (SafetensorsDType.F32 or SafetensorsDType.F16 or SafetensorsDType.BF16 or SafetensorsDType.F64))
                    throw new MergeException($"{weightsPath}: tensor '{e.Name}' has dtype {e.DType}; LoRA factors must be floating point");
                if (e.Shape.Length != 2)
                    throw new MergeException($"{weightsPath}: tensor '{e.Name}' has shape [{string.Join(", ", e.Shape)}]; LoRA factors are matrices");
                dtype ??= e.DType.ToScalarType();
                string module = e.Name[KeyPrefix.Length..^(isA ? ASuffix.Length : BSuffix.Length)];
                (isA ? aShapes : bShapes)[module] = e.Shape;
            }
            var modules = new Dictionary<string, (long, long, int)>();
            foreach (var (module, a) in aShapes)
            {
                if (!bShapes.TryGetValue(module, out var b))
                    throw new MergeException($"{weightsPath}: tensor '{KeyA(module)}' has no matching '{KeyB(module)}'");
                int expected = PatternValue(rankPattern, module) is { } pr ? (int)pr : rank;
                if (a[0] != expected)
                    throw new MergeException($"{weightsPath}: tensor '{KeyA(module)}' has rank {a[0]} (shape [{a[0]}, {a[1]}]) but {ConfigFileName} says r = {expected}");
                if (b[1] != a[0])
                    throw new MergeException($"{weightsPath}: tensor '{KeyB(module)}' has shape [{b[0]}, {b[1]}], which does not match '{KeyA(module)}' [{a[0]}, {a[1]}] (B must be out×{a[0]})");
                modules[module] = (b[0], a[1], (int)a[0]);
            }
            foreach (var module in bShapes.Keys)
                if (!aShapes.ContainsKey(module))
                    throw new MergeException($"{weightsPath}: tensor '{KeyB(module)}' has no matching '{KeyA(module)}'");
            if (modules.Count == 0) throw new MergeException($"{weightsPath}: no LoRA tensors");
            return new PeftAdapter(dir, config, rank, alpha, rsLora, file, modules, dtype ?? torch.ScalarType.Float32);
        }
        catch { file.Dispose(); throw; }
    }

    public bool Contains(string module) => modules.ContainsKey(module);

    /// <summary>[out, in] of the module's ΔW.</summary>
    public long[] ShapeOf(string module) => modules.TryGetValue(module, out var m)
        ? new[] { m.Out, m.In }
        : throw new MergeException($"{WeightsPath}: no LoRA factors for module '{module}'");

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
        var a = file.Load(KeyA(module), torch.ScalarType.Float32);
        var b = file.Load(KeyB(module), torch.ScalarType.Float32);
        foreach (var (key, t) in new[] { (KeyA(module), a), (KeyB(module), b) })
            if (!t.isfinite().all().item<bool>())
                throw new MergeException($"{WeightsPath}: tensor '{key}' contains NaN or infinite values");
        return LoraDelta.delta(ScaleOf(module), b, a).MoveToOuterDisposeScope();
    }

    public void Dispose() => file.Dispose();

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
                throw new MergeException($"{path}: {field}.{key} must be a number");
            list.Add((key, d));
        }
        return list;
    }

    static string? StringField(JsonObject config, string field, string path) => config[field] switch
    {
        null => null,
        JsonValue v when v.TryGetValue<string>(out var s) => s,
        _ => throw new MergeException($"{path}: {field} must be a string"),
    };

    static bool BoolField(JsonObject config, string field, string path) => config[field] switch
    {
        null => false,
        JsonValue v when v.TryGetValue<bool>(out var b) => b,
        _ => throw new MergeException($"{path}: {field} must be true or false"),
    };

    static double? NumberField(JsonObject config, string field, string path, bool required) => config[field] switch
    {
        null when required => throw new MergeException($"{path}: {field} is missing"),
        null => null,
        JsonValue v when v.TryGetValue<double>(out var d) && double.IsFinite(d) => d,
        _ => throw new MergeException($"{path}: {field} must be a number"),
    };
}
