using System.Text.Json;
using System.Text.Json.Nodes;

namespace MMedExpert.Core.Model.Vision;

/// <summary>
/// Shape of the Qwen2.5-VL vision tower: the <c>vision_config</c> object of a checkpoint's config.json
/// (Hugging Face's Qwen2_5_VLVisionConfig). The keys that fix the tensor shapes are required; the others default to
/// the values of the Hugging Face class, which are those of every published Qwen2.5-VL checkpoint.
/// </summary>
public sealed record VisionConfig
{
    public required int Depth { get; init; }
    public required int HiddenSize { get; init; }
    public required int IntermediateSize { get; init; }
    public required int NumHeads { get; init; }
    /// <summary>Width of the merged image tokens: the language model's hidden size.</summary>
    public required int OutHiddenSize { get; init; }
    /// <summary>Blocks that attend over the whole image; all other blocks attend within windows.</summary>
    public required IReadOnlyList<int> FullAttentionBlockIndexes { get; init; }

    public int InChannels { get; init; } = 3;
    public int PatchSize { get; init; } = 14;
    public int SpatialMergeSize { get; init; } = 2;
    public int TemporalPatchSize { get; init; } = 2;
    /// <summary>Side of an attention window in input pixels (112 = 4 merged tokens of 28 px).</summary>
    public int WindowSize { get; init; } = 112;
    public string HiddenAct { get; init; } = "silu";
    /// <summary>Temporal M-RoPE step per second of video; the language model's position ids use it, the tower does not.</summary>
    public int TokensPerSecond { get; init; } = 4;
    public double InitializerRange { get; init; } = 0.02;

    /// <summary>Keys of the JSON object that this reader does not use (model_type, torch_dtype, ...), for the caller to report.</summary>
    public IReadOnlyList<string> IgnoredKeys { get; init; } = Array.Empty<string>();

    /// <summary>RMSNorm epsilon of the blocks and the merger: fixed at 1e-6 in the reference code, not configurable.</summary>
    public const double RmsNormEps = 1e-6;
    /// <summary>Rotary base of the 2D position embedding: fixed at 10000 in the reference code.</summary>
    public const double RopeTheta = 10000.0;

    public int HeadDim => HiddenSize / NumHeads;
    /// <summary>Values in one row of pixel_values: channels · temporal patch · patch · patch (3·2·14·14 = 1176).</summary>
    public int PatchRowWidth => InChannels * TemporalPatchSize * PatchSize * PatchSize;
    /// <summary>Patches merged into one language-model token (2×2 = 4).</summary>
    public int SpatialMergeUnit => SpatialMergeSize * SpatialMergeSize;
    /// <summary>Side of an attention window in merged tokens (112 / 14 / 2 = 4), floored as in the reference.</summary>
    public int WindowMergedTokens => WindowSize / SpatialMergeSize / PatchSize;

    /// <summary>Test preset: 4 blocks of width 32 (2 heads), blocks 1 and 3 full attention.</summary>
    public static VisionConfig Tiny(int outHiddenSize) => new()
    {
        Depth = 4, HiddenSize = 32, IntermediateSize = 64, NumHeads = 2, OutHiddenSize = outHiddenSize,
        FullAttentionBlockIndexes = new[] { 1, 3 },
    };

    /// <summary>Small preset for the embedded default model: trainable on 2 CPU cores.</summary>
    public static VisionConfig Small(int outHiddenSize) => new()
    {
        Depth = 6, HiddenSize = 128, IntermediateSize = 352, NumHeads = 4, OutHiddenSize = outHiddenSize,
        FullAttentionBlockIndexes = new[] { 2, 5 },
    };

    /// <summary>The tower of Qwen2.5-VL-3B-Instruct (same tower as 7B, merged into width 2048).</summary>
    public static VisionConfig Qwen25VL3B => Qwen25VLTower(2048);

    /// <summary>The tower of Qwen2.5-VL-7B-Instruct (merged into width 3584).</summary>
    public static VisionConfig Qwen25VL7B => Qwen25VLTower(3584);

    private static VisionConfig Qwen25VLTower(int outHiddenSize) => new()
    {
        Depth = 32, HiddenSize = 1280, IntermediateSize = 3420, NumHeads = 16, OutHiddenSize = outHiddenSize,
        FullAttentionBlockIndexes = new[] { 7, 15, 23, 31 }, TokensPerSecond = 2,
    };

    private static readonly string[] RequiredKeys =
        { "depth", "hidden_size", "intermediate_size", "num_heads", "out_hidden_size", "fullatt_block_indexes" };

    private static readonly HashSet<string> KnownKeys = new(RequiredKeys)
    {
        "in_channels", "in_chans", "patch_size", "spatial_patch_size", "spatial_merge_size", "temporal_patch_size",
        "window_size", "hidden_act", "tokens_per_second", "initializer_range",
    };

    /// <summary>
    /// Reads a <c>vision_config</c> object. <paramref name="source"/> names it in errors, e.g. "model/config.json: vision_config".
    /// </summary>
    public static VisionConfig FromJson(JsonElement json, string source = "vision_config")
    {
        if (json.ValueKind != JsonValueKind.Object)
            throw new ModelConfigException($"{source}: must be a JSON object, got {json.ValueKind}");
        foreach (var key in RequiredKeys)
            if (!json.TryGetProperty(key, out _))
                throw new ModelConfigException($"{source}: required key '{key}' is missing");

        // Published configs carry both spellings of the channel count (in_channels, legacy in_chans).
        int? inChannels = OptionalInt(json, "in_channels", source);
        int? inChans = OptionalInt(json, "in_chans", source);
        if (inChannels is int a && inChans is int b && a != b)
            throw new ModelConfigException($"{source}: 'in_channels' ({a}) and 'in_chans' ({b}) disagree");
        int patchSize = OptionalInt(json, "patch_size", source) ?? 14;
        if (OptionalInt(json, "spatial_patch_size", source) is int sp && sp != patchSize)
            throw new ModelConfigException($"{source}: 'spatial_patch_size' ({sp}) differs from 'patch_size' ({patchSize})");

        var config = new VisionConfig
        {
            Depth = RequiredInt(json, "depth", source),
            HiddenSize = RequiredInt(json, "hidden_size", source),
            IntermediateSize = RequiredInt(json, "intermediate_size", source),
            NumHeads = RequiredInt(json, "num_heads", source),
            OutHiddenSize = RequiredInt(json, "out_hidden_size", source),
            FullAttentionBlockIndexes = IntList(json.GetProperty("fullatt_block_indexes"), "fullatt_block_indexes", source),
            InChannels = inChannels ?? inChans ?? 3,
            PatchSize = patchSize,
            SpatialMergeSize = OptionalInt(json, "spatial_merge_size", source) ?? 2,
            TemporalPatchSize = OptionalInt(json, "temporal_patch_size", source) ?? 2,
            WindowSize = OptionalInt(json, "window_size", source) ?? 112,
            HiddenAct = OptionalString(json, "hidden_act", source) ?? "silu",
            TokensPerSecond = OptionalInt(json, "tokens_per_second", source) ?? 4,
            InitializerRange = OptionalDouble(json, "initializer_range", source) ?? 0.02,
            IgnoredKeys = json.EnumerateObject().Select(p => p.Name).Where(k => !KnownKeys.Contains(k)).ToArray(),
        };
        config.Validate(source);
        return config;
    }

    /// <summary>Checks that the values describe a tower that can be built; the message names the offending key.</summary>
    public void Validate(string source = "vision_config")
    {
        void Positive(string key, int value)
        {
            if (value <= 0) throw new ModelConfigException($"{source}: '{key}' must be positive, got {value}");
        }
        Positive("depth", Depth);
        Positive("hidden_size", HiddenSize);
        Positive("intermediate_size", IntermediateSize);
        Positive("num_heads", NumHeads);
        Positive("out_hidden_size", OutHiddenSize);
        Positive("in_channels", InChannels);
        Positive("patch_size", PatchSize);
        Positive("spatial_merge_size", SpatialMergeSize);
        Positive("temporal_patch_size", TemporalPatchSize);
        if (HiddenSize % NumHeads != 0)
            throw new ModelConfigException($"{source}: 'hidden_size' ({HiddenSize}) is not divisible by 'num_heads' ({NumHeads})");
        // The 2D rotary embedding gives a quarter of each head to the row and a quarter to the column frequencies.
        if (HeadDim % 4 != 0)
            throw new ModelConfigException($"{source}: head dim hidden_size/num_heads = {HeadDim} must be a multiple of 4 (2D rotary)");
        if (WindowMergedTokens < 1)
            throw new ModelConfigException(
                $"{source}: 'window_size' ({WindowSize}) must be at least patch_size·spatial_merge_size = {PatchSize * SpatialMergeSize}");
        if (HiddenAct != "silu")
            throw new ModelConfigException($"{source}: 'hidden_act' \"{HiddenAct}\" is not supported (Qwen2.5-VL uses \"silu\")");
        var seen = new HashSet<int>();
        foreach (var i in FullAttentionBlockIndexes)
        {
            if (i < 0 || i >= Depth)
                throw new ModelConfigException($"{source}: 'fullatt_block_indexes' entry {i} is outside 0..{Depth - 1}");
            if (!seen.Add(i))
                throw new ModelConfigException($"{source}: 'fullatt_block_indexes' lists block {i} twice");
        }
    }

    /// <summary>The <c>vision_config</c> object in Hugging Face's spelling (both channel keys, as published configs have).</summary>
    public JsonObject ToJson() => new()
    {
        ["depth"] = Depth,
        ["fullatt_block_indexes"] = new JsonArray(FullAttentionBlockIndexes.Select(i => (JsonNode)i).ToArray()),
        ["hidden_act"] = HiddenAct,
        ["hidden_size"] = HiddenSize,
        ["in_channels"] = InChannels,
        ["in_chans"] = InChannels,
        ["initializer_range"] = InitializerRange,
        ["intermediate_size"] = IntermediateSize,
        ["model_type"] = "qwen2_5_vl",
        ["num_heads"] = NumHeads,
        ["out_hidden_size"] = OutHiddenSize,
        ["patch_size"] = PatchSize,
        ["spatial_merge_size"] = SpatialMergeSize,
        ["spatial_patch_size"] = PatchSize,
        ["temporal_patch_size"] = TemporalPatchSize,
        ["tokens_per_second"] = TokensPerSecond,
        ["window_size"] = WindowSize,
    };

    private static int RequiredInt(JsonElement json, string key, string source) =>
        AsInt(json.GetProperty(key), key, source);

    private static int? OptionalInt(JsonElement json, string key, string source) =>
        json.TryGetProperty(key, out var v) && v.ValueKind != JsonValueKind.Null ? AsInt(v, key, source) : null;

    private static double? OptionalDouble(JsonElement json, string key, string source)
    {
        if (!json.TryGetProperty(key, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        if (v.ValueKind != JsonValueKind.Number)
            throw new ModelConfigException($"{source}: '{key}' must be a number, got {v.ValueKind}");
        return v.GetDouble();
    }

    private static string? OptionalString(JsonElement json, string key, string source)
    {
        if (!json.TryGetProperty(key, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        if (v.ValueKind != JsonValueKind.String)
            throw new ModelConfigException($"{source}: '{key}' must be a string, got {v.ValueKind}");
        return v.GetString();
    }

    private static int AsInt(JsonElement v, string key, string source)
    {
        if (v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i)) return i;
        // Some writers emit integral floats (e.g. 2.0); accept them, reject fractions.
        if (v.ValueKind == JsonValueKind.Number && v.TryGetDouble(out double d) && d == Math.Floor(d) && Math.Abs(d) < int.MaxValue)
            return (int)d;
        throw new ModelConfigException($"{source}: '{key}' must be an integer, got {v.GetRawText()}");
    }

    private static int[] IntList(JsonElement v, string key, string source)
    {
        if (v.ValueKind != JsonValueKind.Array)
            throw new ModelConfigException($"{source}: '{key}' must be a list of integers, got {v.GetRawText()}");
        return v.EnumerateArray().Select(e => AsInt(e, key, source)).ToArray();
    }
}
