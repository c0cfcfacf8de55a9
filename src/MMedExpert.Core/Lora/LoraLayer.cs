using MMedExpert.Core.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace MMedExpert.Core.Lora;

/// <summary>
/// The adapter slot's occupant on one <see cref="AdaptableLinear"/>: holds every adapter on that layer and adds the
/// outputs of the active, unmerged ones to the base output, in the order they were activated; or, while the owner routes
/// rows (<see cref="LoraAdapters.SetRowAdapters"/>), each row's own adapter output.
/// </summary>
internal sealed class LoraLayer : ILinearAdapter
{
    // index_add's alpha, made once: a Scalar per call would be one more native handle per layer per step.
    static readonly Scalar One = 1.ToScalar();
    readonly AdaptableLinear linear;
    readonly string path;
    readonly LoraAdapters owner;
    public Dictionary<string, LoraWeights> Adapters { get; } = new();

    public LoraLayer(AdaptableLinear linear, string path, LoraAdapters owner)
    {
        this.linear = linear;
        this.path = path;
        this.owner = owner;
    }

    public Tensor Apply(Tensor input, Tensor baseOutput)
    {
        if (owner.Routing is { } routing) return ApplyRouted(routing, input, baseOutput);
        var y = baseOutput;
        foreach (var name in owner.Active)
        {
            if (!Adapters.TryGetValue(name, out var w) || w.Merged) continue;
            var delta = w.Output(input, linear.training);
            y = y + (delta.dtype == y.dtype ? delta : delta.to_type(y.dtype));
        }
        return y;
    }

    /// <summary>
    /// Each routed adapter's output on its rows only: gather them (index_select), compute, scatter-add (index_add) into
    /// the base output. Base rows get nothing; an adapter with every row is added as on the active-set path.
    /// </summary>
    Tensor ApplyRouted(LoraRowRouting routing, Tensor input, Tensor baseOutput)
    {
        if (input.dim() == 0 || input.shape[0] != routing.Rows.Count)
            throw new LoraException($"row adapters: {routing.Rows.Count} rows are routed but layer '{path}' got an input of shape " +
                                    $"[{string.Join(", ", input.shape)}]; the batch must have one row per routed entry");
        var y = baseOutput;
        foreach (var group in routing.Groups)
        {
            if (!Adapters.TryGetValue(group.Adapter, out var w)) continue;
            if (group.Rows is null)
            {
                var all = w.Output(input, linear.training);
                y = y + (all.dtype == y.dtype ? all : all.to_type(y.dtype));
                continue;
            }
            var delta = w.Output(input.index_select(0, group.Rows), linear.training);
            y = y.index_add(0, group.Rows, delta.dtype == y.dtype ? delta : delta.to_type(y.dtype), One);
        }
        return y;
    }
}
