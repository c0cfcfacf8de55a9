using System.Text.Json;
using System.Text.Json.Nodes;

namespace MMedExpert.Core.Lora;

/// <summary>
/// PEFT's <c>adapter_config.json</c> for LoRA: writing the fields PEFT reads, and reading a file written by PEFT into a
/// <see cref="LoraConfig"/>, refusing every setting that would change the adapter's math in a way not implemented here
/// (DoRA, bias training, fan_in_fan_out, per-module rank/alpha patterns, ...), with the file and key in the message.
/// </summary>
public static class PeftAdapterConfig
{
    public const string FileName = "adapter_config.json";

    /// <summary>What a loaded config says beyond <see cref="LoraConfig"/>: PEFT's exclusion list and its init value.</summary>
    public sealed record Loaded(LoraConfig Config, TargetModules? ExcludeModules, string InitLoraWeights);

    /// <summary>The JSON PEFT reads back (keys as in PEFT's LoraConfig).</summary>
    public static JsonObject ToJson(LoraConfig config, int r, double alpha, string initLoraWeights, bool excludeVision)
    {
        var o = new JsonObject
        {
            ["peft_type"] = "LORA",
            ["task_type"] = config.TaskType,
            ["base_model_name_or_path"] = config.BaseModelNameOrPath,
            ["r"] = r,
            ["lora_alpha"] = alpha == Math.Floor(alpha) && Math.Abs(alpha) < 1e15 ? JsonValue.Create((long)alpha) : JsonValue.Create(alpha),
            ["lora_dropout"] = config.Dropout,
            ["use_rslora"] = config.UseRsLora,
            ["target_modules"] = TargetsToJson(config.TargetModules),
            ["init_lora_weights"] = initLoraWeights == "true" ? JsonValue.Create(true) : JsonValue.Create(initLoraWeights),
            ["bias"] = "none",
            ["fan_in_fan_out"] = false,
            ["modules_to_save"] = null,
            ["rank_pattern"] = new JsonObject(),
            ["alpha_pattern"] = new JsonObject(),
            ["use_dora"] = false,
            ["inference_mode"] = true,
            ["revision"] = null,
        };
        // Written only when needed: PEFT versions before 0.14 do not know the key.
        if (excludeVision) o["exclude_modules"] = TargetModules.VisionPattern;
        return o;
    }

    static JsonNode TargetsToJson(TargetModules t) =>
        t.IsAllLinear ? JsonValue.Create(TargetModules.AllLinearKeyword)
        : t.Pattern is { } p ? JsonValue.Create(p)
        : new JsonArray(t.Names!.Select(n => (JsonNode?)JsonValue.Create(n)).ToArray());

    /// <summary>
    /// Keys whose value does not change the loaded adapter's function (informational, init-only or runtime-only).
    /// Unknown keys not listed anywhere are accepted only when their value is empty (null, false, [], {}).
    /// </summary>
    static readonly HashSet<string> Harmless = new()
    {
        "task_type", "base_model_name_or_path", "revision", "inference_mode", "auto_mapping", "peft_version",
        "layers_pattern", "loftq_config", "eva_config", "corda_config", "megatron_config", "megatron_core",
        "runtime_config", "qalora_group_size", "ensure_weight_tying", "lora_ga_config",
    };

    public static Loaded Read(string path)
    {
        if (!File.Exists(path)) throw new LoraException($"{path}: file not found");
        JsonObject root;
        try
        {
            root = JsonNode.Parse(File.ReadAllText(path)) as JsonObject
                   ?? throw new LoraException($"{path}: expected a JSON object");
        }
        catch (JsonException e) { throw new LoraException($"{path}: invalid JSON: {e.Message}"); }

        string Err(string key, string what) => $"{path}: key '{key}': {what}";
        var config = new LoraConfig { Init = LoraInit.Kaiming, Dropout = 0, Alpha = 8, R = 8, IncludeVision = true };
        TargetModules? targets = null, exclude = null;
        string init = "true";
        foreach (var (key, node) in root)
        {
            switch (key)
            {
                case "peft_type":
                    if (Str(node) != "LORA") throw new LoraException(Err(key, $"'{node?.ToJsonString()}' is not supported (only LORA)"));
                    break;
                case "r":
                    config = config with { R = Int(node, () => Err(key, "expected a positive integer")) };
                    break;
                case "lora_alpha":
                    config = config with { Alpha = Num(node, () => Err(key, "expected a number")) };
                    break;
                case "lora_dropout":
                    config = config with { Dropout = node is null ? 0 : Num(node, () => Err(key, "expected a number")) };
                    break;
                case "use_rslora":
                    config = config with { UseRsLora = Bool(node, () => Err(key, "expected true or false")) };
                    break;
                case "target_modules":
                    targets = Targets(node, () => Err(key, "expected a list of module names or a regex string"));
                    break;
                case "exclude_modules":
                    exclude = IsEmpty(node) ? null : Targets(node, () => Err(key, "expected a list of module names or a regex string"));
                    break;
                case "init_lora_weights":
                    init = node is JsonValue v && v.TryGetValue<bool>(out var b) ? (b ? "true" : "false")
                        : Str(node) ?? throw new LoraException(Err(key, "expected true, false or a string"));
                    // These inits change the base weights in PEFT; a file saved without PEFT's conversion only fits
                    // that mutated base, which is not what the caller loads it onto.
                    if (init.StartsWith("pissa", StringComparison.Ordinal) || init is "olora" or "corda" or "loftq")
                        throw new LoraException(Err(key, $"'{init}' adapters are saved relative to a modified base model; " +
                            "save them converted to plain LoRA (PEFT: save_pretrained(..., path_initial_model_for_weight_conversion=...))"));
                    break;
                case "task_type":
                    config = config with { TaskType = Str(node) ?? "CAUSAL_LM" };
                    break;
                case "base_model_name_or_path":
                    config = config with { BaseModelNameOrPath = Str(node) };
                    break;
                case "bias":
                    if (node is not null && Str(node) != "none") throw new LoraException(Err(key, $"{node.ToJsonString()} is not supported (only \"none\")"));
                    break;
                case "use_dora":
                    if (IsTrue(node)) throw new LoraException(Err(key, "DoRA adapters are not supported"));
                    break;
                case "fan_in_fan_out":
                case "lora_bias":
                case "use_qalora":
                case "use_alora":
                    if (IsTrue(node)) throw new LoraException(Err(key, "true is not supported"));
                    break;
                case "modules_to_save":
                case "rank_pattern":
                case "alpha_pattern":
                case "layers_to_transform":
                case "layer_replication":
                case "alora_invocation_tokens":
                case "trainable_token_indices":
                case "target_parameters":
                    if (!IsEmpty(node)) throw new LoraException(Err(key, $"{node!.ToJsonString()} is not supported (only empty)"));
                    break;
                default:
                    if (!Harmless.Contains(key) && !IsEmpty(node))
                        throw new LoraException(Err(key, $"unknown setting with value {node!.ToJsonString()}; refusing to guess whether it changes the adapter"));
                    break;
            }
        }
        if (targets is null) throw new LoraException($"{path}: key 'target_modules' is missing or null");
        config = config with { TargetModules = targets };
        try { config.Validate(); }
        catch (LoraException e) { throw new LoraException($"{path}: {e.Message}"); }
        return new Loaded(config, exclude, init);
    }

    static string? Str(JsonNode? n) => n is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;

    static bool IsTrue(JsonNode? n) => n is JsonValue v && v.TryGetValue<bool>(out var b) && b;

    static bool IsEmpty(JsonNode? n) => n switch
    {
        null => true,
        JsonArray a => a.Count == 0,
        JsonObject o => o.Count == 0,
        JsonValue v => v.TryGetValue<bool>(out var b) && !b,
        _ => false,
    };

    static int Int(JsonNode? n, Func<string> err)
    {
        if (n is JsonValue v && v.TryGetValue<double>(out var d) && d == Math.Floor(d) && d > 0 && d <= int.MaxValue) return (int)d;
        throw new LoraException(err());
    }

    static double Num(JsonNode? n, Func<string> err) =>
        n is JsonValue v && v.TryGetValue<double>(out var d) ? d : throw new LoraException(err());

    static bool Bool(JsonNode? n, Func<string> err) =>
        n is null ? false : n is JsonValue v && v.TryGetValue<bool>(out var b) ? b : throw new LoraException(err());

    static TargetModules Targets(JsonNode? n, Func<string> err)
    {
        if (Str(n) is { } s) return TargetModules.FromRegex(s);
        if (n is JsonArray a)
        {
            var names = a.Select(x => Str(x) ?? throw new LoraException(err())).ToArray();
            if (names.Length == 0) throw new LoraException(err());
            return TargetModules.FromNames(names);
        }
        throw new LoraException(err());
    }
}
