using System.Text.Json;
using System.Text.Json.Nodes;
using MMedExpert.Core.Model;
using static TorchSharp.torch;

namespace MMedExpert.Core.Export;

/// <summary>
/// config.json of an export, in the layout transformers 4.50's <c>save_pretrained</c> writes for Qwen2.5-VL (what
/// <c>Qwen2_5_VLForConditionalGeneration.from_pretrained</c> and vLLM's Qwen2_5_VLForConditionalGeneration read): the
/// language-model fields at the top level, <c>vision_config</c> nested, keys sorted, <c>torch_dtype</c> the dtype of the
/// written weights. A newer file's <c>text_config</c> is folded into the top level (its fields are already there, see
/// <see cref="Qwen25VLConfig.ToJson"/>), since 4.50 has no text_config and newer versions still read the flat layout.
/// </summary>
public static class HfModelConfig
{
    /// <summary>The transformers version whose layout the export follows (written as transformers_version).</summary>
    public const string TransformersVersion = "4.50.0";
    public const string Architecture = "Qwen2_5_VLForConditionalGeneration";
    public const string ModelType = "qwen2_5_vl";

    /// <summary>The name transformers gives a torch dtype in config.json.</summary>
    public static string DTypeName(ScalarType dtype) => dtype switch
    {
        ScalarType.Float32 => "float32",
        ScalarType.BFloat16 => "bfloat16",
        ScalarType.Float16 => "float16",
        _ => throw new ExportException($"dtype {dtype}: not a weight dtype an export writes (float32, bfloat16)"),
    };

    public static string ToJson(Qwen25VLConfig config, ScalarType dtype)
    {
        var root = JsonNode.Parse(config.ToJson())!.AsObject();
        root.Remove("text_config");
        root.Remove("dtype"); // the newer spelling of torch_dtype: one key, the one 4.50 reads
        root["architectures"] = new JsonArray(Architecture);
        root["model_type"] = ModelType;
        root["torch_dtype"] = DTypeName(dtype);
        root["transformers_version"] = TransformersVersion;
        // Keys 4.50 always writes (its Qwen2_5_VLConfig defaults) when the source file lacked them.
        SetDefault(root, "hidden_act", "silu");
        SetDefault(root, "attention_dropout", 0.0);
        SetDefault(root, "initializer_range", 0.02);
        SetDefault(root, "use_cache", true);
        SetDefault(root, "use_sliding_window", false);
        SetDefault(root, "sliding_window", 4096);
        SetDefault(root, "max_window_layers", 80);
        var vision = root["vision_config"]!.AsObject();
        // 4.50's Qwen2_5_VLVisionConfig has in_channels and patch_size, not the older aliases in_chans/spatial_patch_size
        // (equal to them, the reader checks), and no initializer_range: the keys it writes, no others.
        foreach (var key in new[] { "torch_dtype", "dtype", "in_chans", "spatial_patch_size", "initializer_range" }) vision.Remove(key);
        vision["model_type"] = ModelType;
        return Sorted(root).ToJsonString(Json) + "\n";
    }

    static void SetDefault(JsonObject o, string key, JsonNode value)
    {
        if (!o.ContainsKey(key)) o[key] = value;
    }

    /// <summary>save_pretrained writes with sort_keys=True (nested objects too).</summary>
    static JsonObject Sorted(JsonObject o) =>
        new(o.OrderBy(kv => kv.Key, StringComparer.Ordinal)
            .Select(kv => new KeyValuePair<string, JsonNode?>(kv.Key, kv.Value is JsonObject inner ? Sorted(inner) : kv.Value?.DeepClone())));

    /// <summary>Indented, with '&lt;', '&gt;' and non-ASCII written as themselves (as Python's json writes them), not as \u escapes.</summary>
    public static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };
}
