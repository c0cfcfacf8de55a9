using TorchSharp;
using static TorchSharp.torch;

namespace MMedExpert.Core.Model.Text;

/// <summary>The decoder's SwiGLU feed-forward block: down(silu(gate(x)) · up(x)), no biases.</summary>
public sealed class Qwen2Mlp : nn.Module<Tensor, Tensor>
{
    public readonly AdaptableLinear gate_proj;
    public readonly AdaptableLinear up_proj;
    public readonly AdaptableLinear down_proj;

    public Qwen2Mlp(long hiddenSize, long intermediateSize, ScalarType dtype = ScalarType.Float32) : base(nameof(Qwen2Mlp))
    {
        gate_proj = new AdaptableLinear(nameof(gate_proj), hiddenSize, intermediateSize, hasBias: false, dtype: dtype);
        up_proj = new AdaptableLinear(nameof(up_proj), hiddenSize, intermediateSize, hasBias: false, dtype: dtype);
        down_proj = new AdaptableLinear(nameof(down_proj), intermediateSize, hiddenSize, hasBias: false, dtype: dtype);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var gate = gate_proj.forward(x);
        using var up = up_proj.forward(x);
        using var h = Kernels.SiluMul(gate, up);
        return down_proj.forward(h);
    }
}
