using static TorchSharp.torch;

namespace MMedExpert.Core.Lora;

/// <summary>
/// Per-row adapter routing of a batch (S-LoRA/Punica style mixed-adapter batching): row b of every forward input
/// [B, ...] takes adapter <c>Rows[b]</c>, or none (the base) when null. The rows are grouped once, here, so each LoRA layer
/// only gathers its adapters' rows with the cached index tensors instead of regrouping per layer.
/// Created and owned by <see cref="LoraAdapters.SetRowAdapters"/>.
/// </summary>
internal sealed class LoraRowRouting : IDisposable
{
    /// <summary>One adapter's rows: their indices (int64, on the model's device), or null when it has every row.</summary>
    internal readonly record struct Group(string Adapter, Tensor? Rows);

    public IReadOnlyList<string?> Rows { get; }
    /// <summary>Distinct adapters in order of first appearance (base rows are in no group).</summary>
    public IReadOnlyList<Group> Groups { get; }

    public LoraRowRouting(IReadOnlyList<string?> rows, Device device)
    {
        Rows = rows.ToArray();
        var groups = new List<Group>();
        foreach (var name in Rows.Where(n => n is not null).Distinct())
        {
            var indices = Enumerable.Range(0, Rows.Count).Where(b => Rows[b] == name).Select(b => (long)b).ToArray();
            // A group with every row needs no gather: the layer adds its output as the active-set path does.
            var index = indices.Length == Rows.Count ? null : tensor(indices, device: device).DetachFromDisposeScope();
            groups.Add(new Group(name!, index));
        }
        Groups = groups;
    }

    public bool SameRows(IReadOnlyList<string?> rows) =>
        rows.Count == Rows.Count && Enumerable.Range(0, rows.Count).All(b => rows[b] == Rows[b]);

    public bool Names(string adapter) => Rows.Contains(adapter);

    public void Dispose()
    {
        foreach (var g in Groups) g.Rows?.Dispose();
    }
}
