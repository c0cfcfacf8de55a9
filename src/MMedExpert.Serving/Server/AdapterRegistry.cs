using System.Collections.Concurrent;

namespace MMedExpert.Serving.Server;

/// <summary>
/// Served model names of the loaded LoRA adapters → the adapters' internal names in <c>LoraAdapters</c> (unique per load,
/// so a name unloaded and loaded again never reaches the requests still waiting for the old one). Read by request
/// threads; changed only after the engine thread has loaded or before it removes an adapter.
/// </summary>
public sealed class AdapterRegistry
{
    readonly ConcurrentDictionary<string, (string Internal, string Path, long Created)> byName = new(StringComparer.Ordinal);
    long counter;

    public bool TryGet(string name, out string internalName)
    {
        bool found = byName.TryGetValue(name, out var entry);
        internalName = entry.Internal;
        return found;
    }

    public bool Contains(string name) => byName.ContainsKey(name);

    public IReadOnlyList<(string Name, string Path, long Created)> List() =>
        byName.OrderBy(kv => kv.Value.Created).ThenBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => (kv.Key, kv.Value.Path, kv.Value.Created)).ToList();

    /// <summary>A fresh internal name (letters and digits only: LoraAdapters refuses dots).</summary>
    public string NewInternalName() => $"served{Interlocked.Increment(ref counter)}";

    /// <summary>Registers a loaded adapter; false when the name was taken meanwhile.</summary>
    public bool Add(string name, string internalName, string path) =>
        byName.TryAdd(name, (internalName, path, DateTimeOffset.UtcNow.ToUnixTimeSeconds()));

    public bool Remove(string name, out string internalName)
    {
        bool removed = byName.TryRemove(name, out var entry);
        internalName = entry.Internal;
        return removed;
    }

    /// <summary>Serializes load/unload requests so "exists" checks and changes do not interleave.</summary>
    public SemaphoreSlim Gate { get; } = new(1, 1);
}
