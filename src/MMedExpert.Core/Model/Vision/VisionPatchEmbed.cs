using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MMedExpert.Core.Model.Vision;

/// <summary>
/// Patch embedding: each row of pixel_values (channels · temporal · patch · patch values of one 2×14×14 patch) is
/// projected to the hidden width. The checkpoint stores it as a Conv3d without bias whose kernel equals its stride,
/// so the convolution over one patch is exactly a matmul of the flattened row with the flattened kernel.
/// State dict: <c>proj.weight</c> [hidden, channels, temporal, patch, patch].
/// </summary>
public sealed class VisionPatchEmbed : nn.Module<Tensor, Tensor>
{
    private readonly Conv3d proj;
    private readonly long hiddenSize;

    public VisionPatchEmbed(string name, VisionConfig config) : base(name)
    {
        hiddenSize = config.HiddenSize;
        var kernel = (config.TemporalPatchSize, config.PatchSize, config.PatchSize);
        proj = nn.Conv3d(config.InChannels, config.HiddenSize, kernel_size: ((long)kernel.Item1, kernel.Item2, kernel.Item3),
            stride: ((long)kernel.Item1, kernel.Item2, kernel.Item3), bias: false);
        RegisterComponents();
    }

    /// <summary>[N, channels·temporal·patch·patch] → [N, hidden], in the weight's dtype.</summary>
    public override Tensor forward(Tensor pixelRows)
    {
        using var scope = NewDisposeScope();
        var weight = proj.weight!;
        var kernel = weight.view(hiddenSize, -1);
        return pixelRows.to_type(weight.dtype).matmul(kernel.t()).MoveToOuterDisposeScope();
    }
}
