using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MMedExpert.Core.Model;

/// <summary>
/// Something that changes a linear layer's output, e.g. a set of LoRA adapters: y' = Apply(x, x·Wᵀ + b).
/// </summary>
public interface ILinearAdapter
{
    Tensor Apply(Tensor input, Tensor baseOutput);
}

/// <summary>
/// The model's linear layer: y = x·Wᵀ + b, with parameters named like the checkpoint (<c>weight</c>, <c>bias</c>), and
/// a slot for an adapter (LoRA). Every linear of the model is one of these, so adapters attach by module name without
/// replacing modules; with no adapter it is exactly <c>nn.Linear</c>.
/// </summary>
public sealed class AdaptableLinear : nn.Module<Tensor, Tensor>
{
    public Parameter weight;
    public Parameter? bias;

    public long InFeatures { get; }
    public long OutFeatures { get; }

    /// <summary>Set by the LoRA code; null for the plain layer.</summary>
    public ILinearAdapter? Adapter { get; set; }

    /// <summary>Dtype of the product when it differs from the weights' (mixed precision, see <see cref="MixedPrecision"/>).</summary>
    public ScalarType? ComputeDType { get; set; }

    public AdaptableLinear(string name, long inFeatures, long outFeatures, bool hasBias = true, ScalarType? dtype = null)
        : base(name)
    {
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        weight = new Parameter(empty(outFeatures, inFeatures, dtype: dtype));
        // nn.Linear's default initialisation (Kaiming-uniform with a = sqrt(5)), so random presets behave like PyTorch's.
        nn.init.kaiming_uniform_(weight, a: Math.Sqrt(5));
        if (hasBias)
        {
            double bound = 1 / Math.Sqrt(inFeatures);
            bias = new Parameter(empty(outFeatures, dtype: dtype));
            nn.init.uniform_(bias, -bound, bound);
        }
        RegisterComponents();
    }

    public override Tensor forward(Tensor input)
    {
        var y = MixedPrecision.Linear(input, weight, bias, ComputeDType);
        return Adapter is null ? y : Adapter.Apply(input, y);
    }
}
