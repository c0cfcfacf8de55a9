using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MMedExpert.Core.Model.Text;

/// <summary>RMSNorm with a learned scale (`weight`), computed by <see cref="Kernels.RmsNorm"/>.</summary>
public sealed class Qwen2RmsNorm : nn.Module<Tensor, Tensor>
{
    public readonly Parameter weight;
    readonly double eps;

    public Qwen2RmsNorm(long hiddenSize, double eps, ScalarType dtype = ScalarType.Float32) : base(nameof(Qwen2RmsNorm))
    {
        this.eps = eps;
        weight = nn.Parameter(ones(hiddenSize, dtype: dtype));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => Kernels.RmsNorm(x, weight, eps);
}
