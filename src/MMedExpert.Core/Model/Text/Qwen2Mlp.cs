using TorchSharp;
using static TorchSharp.torch;

namespace MMedExpert.Core.Model.Text;

/// <summary>The decoder's SwiGLU feed-forward block: down(silu(gate(x)) · up(x)), no biases.</summary>
public sealed class Qwen2Mlp : nn.Module<Tensor, Tensor>
{
    // Typed as modules (not Linear) so adapters such as LoRA can wrap them in place.
    public nn.Module<Tensor, Tensor> gate_proj;
    public nn.Module<Tensor, Tensor> up_proj;
    public nn.Module<Tensor, Tensor> down_proj;

    public Qwen2Mlp(long hiddenSize, long intermediateSize) : base(nameof(Qwen2Mlp))
    {
        gate_proj = nn.Linear(hiddenSize, intermediateSize, hasBias: false);
        up_proj = nn.Linear(hiddenSize, intermediateSize, hasBias: false);
        down_proj = nn.Linear(intermediateSize, hiddenSize, hasBias: false);
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
