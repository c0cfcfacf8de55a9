using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MMedExpert.Core.Model.Vision;

/// <summary>
/// The Qwen2.5-VL vision tower (Hugging Face's Qwen2_5_VisionTransformerPretrainedModel). Input: the image
/// processor's pixel rows [N, 3·2·14·14] and each image's patch grid (t, h, w); output: one vector of the language
/// model's width per 2×2 patches, [N/4, out_hidden], in the processor's order (image by image, row-major over merged
/// tokens), ready to replace the <c>&lt;|image_pad|&gt;</c> embeddings.
///
/// Inside, patches are regrouped window by window (windows of 112 px = 4×4 merged tokens) so that windowed blocks
/// attend within contiguous segments; blocks listed in fullatt_block_indexes attend over each whole image instead.
/// No block attends across images. The merger's output is put back into the processor's order at the end.
/// State dict (under <c>visual.</c> in a checkpoint): patch_embed.proj.weight, blocks.{i}.norm1.weight,
/// blocks.{i}.attn.qkv.{weight,bias}, blocks.{i}.attn.proj.{weight,bias}, blocks.{i}.norm2.weight,
/// blocks.{i}.mlp.{gate_proj,up_proj,down_proj}.{weight,bias}, merger.ln_q.weight, merger.mlp.{0,2}.{weight,bias}.
/// </summary>
public sealed class Qwen25VisionTransformer : nn.Module<Tensor, Tensor, Tensor>
{
    private readonly VisionPatchEmbed patch_embed;
    private readonly ModuleList<VisionBlock> blocks;
    private readonly VisionPatchMerger merger;
    private readonly VisionRotaryEmbedding rotary;
    private readonly HashSet<int> fullAttentionBlocks;

    public VisionConfig Config { get; }
    public int SpatialMergeSize => Config.SpatialMergeSize;
    public int OutHiddenSize => Config.OutHiddenSize;

    public Qwen25VisionTransformer(string name, VisionConfig config) : base(name)
    {
        config.Validate();
        Config = config;
        patch_embed = new VisionPatchEmbed("patch_embed", config);
        blocks = nn.ModuleList(Enumerable.Range(0, config.Depth).Select(i => new VisionBlock($"blocks.{i}", config)).ToArray());
        merger = new VisionPatchMerger("merger", config);
        rotary = new VisionRotaryEmbedding(config.HeadDim / 2, config.SpatialMergeSize);
        fullAttentionBlocks = new HashSet<int>(config.FullAttentionBlockIndexes);
        RegisterComponents();
    }

    /// <summary>Image tokens each image becomes: t·h·w / merge².</summary>
    public static long[] TokenCounts(long[][] gridThw, int spatialMergeSize) =>
        gridThw.Select(g => g[0] * g[1] * g[2] / (spatialMergeSize * spatialMergeSize)).ToArray();

    /// <param name="pixelValues">[N, channels·temporal·patch·patch], any float dtype (cast to the weights' dtype)</param>
    /// <param name="gridThw">[images, 3] int64: temporal, height and width of each image in patches</param>
    /// <returns>[N / merge², out_hidden]</returns>
    public override Tensor forward(Tensor pixelValues, Tensor gridThw)
    {
        using var scope = NewDisposeScope();
        var grid = ReadGrid(gridThw);
        CheckInputs(pixelValues, grid);
        long n = pixelValues.shape[0];
        int unit = Config.SpatialMergeUnit;
        var device = pixelValues.device;

        var hidden = patch_embed.forward(pixelValues.to(patch_embed.parameters().First().device)); // [N, hidden]
        var angles = rotary.Angles(grid).to(hidden.device);                                          // [N, headDim/2]

        var windows = VisionWindowPartition.Compute(grid, Config.WindowMergedTokens, SpatialMergeSize);
        var order = tensor(windows.MergedTokenOrder, device: hidden.device);
        // Regroup whole merge units (the 4 patches of a token stay together and in order).
        hidden = hidden.view(n / unit, unit, -1).index_select(0, order).view(n, -1);
        angles = angles.view(n / unit, unit, -1).index_select(0, order).view(n, -1);
        var emb = cat(new[] { angles, angles }, -1);
        var cos = emb.cos();
        var sin = emb.sin();

        for (int i = 0; i < blocks.Count; i++)
        {
            var boundaries = fullAttentionBlocks.Contains(i) ? windows.ImageBoundaries : windows.WindowBoundaries;
            hidden = blocks[i].forward(hidden, boundaries, cos, sin);
        }

        var merged = merger.forward(hidden);                                                      // [N/4, out]
        var restored = merged.index_select(0, tensor(windows.InverseOrder(), device: merged.device));
        return restored.to(device).MoveToOuterDisposeScope();
    }

    private static long[][] ReadGrid(Tensor gridThw)
    {
        if (gridThw.dim() != 2 || gridThw.shape[1] != 3)
            throw new VisionInputException($"image_grid_thw: expected shape [images, 3], got [{string.Join(", ", gridThw.shape)}]");
        if (gridThw.dtype != ScalarType.Int64 && gridThw.dtype != ScalarType.Int32)
            throw new VisionInputException($"image_grid_thw: expected an integer tensor, got {gridThw.dtype}");
        var flat = gridThw.to_type(ScalarType.Int64).cpu().data<long>().ToArray();
        return Enumerable.Range(0, (int)gridThw.shape[0]).Select(i => flat[(3 * i)..(3 * i + 3)]).ToArray();
    }

    private void CheckInputs(Tensor pixelValues, long[][] grid)
    {
        long width = Config.PatchRowWidth;
        if (pixelValues.dim() != 2 || pixelValues.shape[1] != width)
            throw new VisionInputException(
                $"pixel_values: expected shape [patches, {width}] (channels {Config.InChannels} · temporal {Config.TemporalPatchSize} · " +
                $"patch {Config.PatchSize}²), got [{string.Join(", ", pixelValues.shape)}]");
        if (!pixelValues.is_floating_point())
            throw new VisionInputException($"pixel_values: expected a floating-point tensor, got {pixelValues.dtype}");
        if (grid.Length == 0)
            throw new VisionInputException("image_grid_thw: no images");
        for (int i = 0; i < grid.Length; i++)
        {
            var g = grid[i];
            if (g[0] <= 0 || g[1] <= 0 || g[2] <= 0 || g[1] % SpatialMergeSize != 0 || g[2] % SpatialMergeSize != 0)
                throw new VisionInputException(
                    $"image_grid_thw[{i}] = ({g[0]}, {g[1]}, {g[2]}): t, h, w must be positive and h, w multiples of spatial_merge_size {SpatialMergeSize}");
        }
        long patches = grid.Sum(g => g[0] * g[1] * g[2]);
        if (patches != pixelValues.shape[0])
            throw new VisionInputException(
                $"pixel_values has {pixelValues.shape[0]} rows but image_grid_thw describes {patches} patches (sum of t·h·w)");
    }
}
