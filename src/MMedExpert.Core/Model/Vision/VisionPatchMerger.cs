using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MMedExpert.Core.Model.Vision;

/// <summary>
/// Merges each 2×2 group of consecutive patches into one language-model token: RMSNorm over the tower width (ln_q),
/// concatenation of the 4 patches, then Linear → GELU (exact, erf) → Linear to the language model's width.
/// State dict: <c>ln_q.weight</c> [hidden], <c>mlp.0.weight</c> [4·hidden, 4·hidden], <c>mlp.0.bias</c>,
/// <c>mlp.2.weight</c> [out_hidden, 4·hidden], <c>mlp.2.bias</c> (mlp.1 is the parameter-free GELU).
/// </summary>
public sealed class VisionPatchMerger : nn.Module<Tensor, Tensor>
{
    private readonly RmsNorm ln_q;
    private readonly Sequential mlp;
    private readonly long mergedWidth;

    public VisionPatchMerger(string name, VisionConfig config) : base(name)
    {
        mergedWidth = (long)config.HiddenSize * config.SpatialMergeUnit;
        ln_q = new RmsNorm("ln_q", config.HiddenSize, VisionConfig.RmsNormEps);
        mlp = nn.Sequential(
            ("0", new AdaptableLinear("0", mergedWidth, mergedWidth, hasBias: true)),
            ("1", nn.GELU()),
            ("2", new AdaptableLinear("2", mergedWidth, config.OutHiddenSize, hasBias: true)));
        RegisterComponents();
    }

    /// <summary>[N, hidden] with N a multiple of 4, merge groups consecutive → [N/4, out_hidden].</summary>
    public override Tensor forward(Tensor patches)
    {
        using var scope = NewDisposeScope();
        return mlp.forward(ln_q.forward(patches).view(-1, mergedWidth)).MoveToOuterDisposeScope();
    }
}
