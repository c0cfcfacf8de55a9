using TorchSharp;
using static TorchSharp.torch;

namespace MMedExpert.Core.Model.Vision;

/// <summary>
/// One pre-norm transformer block of the tower: x + attn(norm1(x)), then x + mlp(norm2(x)); both norms are RMSNorm
/// with eps 1e-6. Whether it attends within windows or over whole images is decided by the boundaries it is given.
/// State dict: <c>norm1.weight</c>, <c>attn.*</c>, <c>norm2.weight</c>, <c>mlp.*</c>.
/// </summary>
public sealed class VisionBlock : nn.Module
{
    private readonly RmsNorm norm1;
    private readonly VisionAttention attn;
    private readonly RmsNorm norm2;
    private readonly VisionMlp mlp;

    public VisionBlock(string name, VisionConfig config) : base(name)
    {
        norm1 = new RmsNorm("norm1", config.HiddenSize, VisionConfig.RmsNormEps);
        attn = new VisionAttention("attn", config);
        norm2 = new RmsNorm("norm2", config.HiddenSize, VisionConfig.RmsNormEps);
        mlp = new VisionMlp("mlp", config);
        RegisterComponents();
    }

    public Tensor forward(Tensor hidden, long[] boundaries, Tensor cos, Tensor sin)
    {
        using var scope = NewDisposeScope();
        var h = hidden + attn.forward(norm1.forward(hidden), boundaries, cos, sin);
        h = h + mlp.forward(norm2.forward(h));
        return h.MoveToOuterDisposeScope();
    }
}
