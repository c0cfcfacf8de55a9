using MMedExpert.Core.Model;
using static TorchSharp.torch;

namespace MMedExpert.Core.Lora;

/// <summary>
/// The adapter slot's occupant on one <see cref="AdaptableLinear"/>: holds every adapter on that layer and adds the
/// outputs of the active, unmerged ones to the base output, in the order they were activated.
/// </summary>
internal sealed class LoraLayer : ILinearAdapter
{
    readonly AdaptableLinear linear;
    readonly LoraAdapters owner;
    public Dictionary<string, LoraWeights> Adapters { get; } = new();

    public LoraLayer(AdaptableLinear linear, LoraAdapters owner)
    {
        this.linear = linear;
        this.owner = owner;
    }

    public Tensor Apply(Tensor input, Tensor baseOutput)
    {
        var y = baseOutput;
        foreach (var name in owner.Active)
        {
            if (!Adapters.TryGetValue(name, out var w) || w.Merged) continue;
            var delta = w.Output(input, linear.training);
            y = y + (delta.dtype == y.dtype ? delta : delta.to_type(y.dtype));
        }
        return y;
    }
}
