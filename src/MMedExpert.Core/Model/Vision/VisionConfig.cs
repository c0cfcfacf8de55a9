using System.Text.Json.Nodes;

namespace MMedExpert.Core.Model.Vision;

/// <summary>
/// The `vision_config` object of a Qwen2.5-VL config.json.
/// STAND-IN written on the text-model branch so it compiles before the vision branch lands; the vision branch owns this file.
/// </summary>
public sealed record VisionConfig
{
    public int Depth { get; init; } = 32;
    public int HiddenSize { get; init; } = 1280;
    public int IntermediateSize { get; init; } = 3420;
    public int NumHeads { get; init; } = 16;
    public int InChannels { get; init; } = 3;
    public int PatchSize { get; init; } = 14;
    public int SpatialMergeSize { get; init; } = 2;
    public int TemporalPatchSize { get; init; } = 2;
    public int TokensPerSecond { get; init; } = 2;
    public int WindowSize { get; init; } = 112;
    public int OutHiddenSize { get; init; } = 3584;
    public int[] FullAttBlockIndexes { get; init; } = { 7, 15, 23, 31 };

    public static VisionConfig Tiny => new() { Depth = 2, HiddenSize = 32, IntermediateSize = 64, NumHeads = 2, OutHiddenSize = 64, FullAttBlockIndexes = new[] { 1 } };
    public static VisionConfig Small => new() { Depth = 4, HiddenSize = 128, IntermediateSize = 256, NumHeads = 4, OutHiddenSize = 256, FullAttBlockIndexes = new[] { 1, 3 } };
    public static VisionConfig Qwen3B => new() { OutHiddenSize = 2048 };
    public static VisionConfig Qwen7B => new() { OutHiddenSize = 3584 };

    /// <summary>Reads the keys present; absent keys keep the reference defaults (as the published configs rely on).</summary>
    public static VisionConfig FromJson(JsonObject o, string source)
    {
        int Int(string key, int fallback) => o[key] is JsonNode n ? n.GetValue<int>() : fallback;
        var d = new VisionConfig();
        return new VisionConfig
        {
            Depth = Int("depth", d.Depth),
            HiddenSize = Int("hidden_size", d.HiddenSize),
            IntermediateSize = Int("intermediate_size", d.IntermediateSize),
            NumHeads = Int("num_heads", d.NumHeads),
            InChannels = Int("in_channels", Int("in_chans", d.InChannels)),
            PatchSize = Int("patch_size", Int("spatial_patch_size", d.PatchSize)),
            SpatialMergeSize = Int("spatial_merge_size", d.SpatialMergeSize),
            TemporalPatchSize = Int("temporal_patch_size", d.TemporalPatchSize),
            TokensPerSecond = Int("tokens_per_second", d.TokensPerSecond),
            WindowSize = Int("window_size", d.WindowSize),
            OutHiddenSize = Int("out_hidden_size", d.OutHiddenSize),
            FullAttBlockIndexes = o["fullatt_block_indexes"] is JsonArray a ? a.Select(x => x!.GetValue<int>()).ToArray() : d.FullAttBlockIndexes,
        };
    }

    public JsonObject ToJson() => new()
    {
        ["depth"] = Depth, ["hidden_size"] = HiddenSize, ["intermediate_size"] = IntermediateSize, ["num_heads"] = NumHeads,
        ["in_channels"] = InChannels, ["patch_size"] = PatchSize, ["spatial_merge_size"] = SpatialMergeSize,
        ["temporal_patch_size"] = TemporalPatchSize, ["tokens_per_second"] = TokensPerSecond, ["window_size"] = WindowSize,
        ["out_hidden_size"] = OutHiddenSize, ["fullatt_block_indexes"] = new JsonArray(FullAttBlockIndexes.Select(i => (JsonNode)i).ToArray()),
        ["hidden_act"] = "silu", ["model_type"] = "qwen2_5_vl",
    };
}
