using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MMedExpert.Core.Model;

/// <summary>
/// RMSNorm with a learned scale (Hugging Face's Qwen2RMSNorm): the state-dict key is <c>weight</c>, initialised to ones.
/// The arithmetic lives in <see cref="Kernels.RmsNorm"/>.
/// </summary>
public sealed class RmsNorm : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    public double Eps { get; }

    public RmsNorm(string name, long size, double eps, ScalarType dtype = ScalarType.Float32) : base(name)
    {
        weight = new Parameter(ones(size, dtype: dtype));
        Eps = eps;
        RegisterComponents();
    }

    public Tensor Weight => weight;

    public override Tensor forward(Tensor x) => Kernels.RmsNorm(x, weight, Eps);
}
