using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MMedExpert.Core.Model.Vision;

/// <summary>
/// SwiGLU feed-forward of a vision block, with biases: down(silu(gate(x)) · up(x)).
/// State dict: <c>gate_proj</c>, <c>up_proj</c> [intermediate, hidden], <c>down_proj</c> [hidden, intermediate], each with bias.
/// </summary>
public sealed class VisionMlp : nn.Module<Tensor, Tensor>
{
    private readonly AdaptableLinear gate_proj;
    private readonly AdaptableLinear up_proj;
    private readonly AdaptableLinear down_proj;

    public VisionMlp(string name, VisionConfig config) : base(name)
    {
        gate_proj = new AdaptableLinear("gate_proj", config.HiddenSize, config.IntermediateSize, hasBias: true);
        up_proj = new AdaptableLinear("up_proj", config.HiddenSize, config.IntermediateSize, hasBias: true);
        down_proj = new AdaptableLinear("down_proj", config.IntermediateSize, config.HiddenSize, hasBias: true);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return down_proj.forward(Kernels.SiluMul(gate_proj.forward(x), up_proj.forward(x))).MoveToOuterDisposeScope();
    }
}
