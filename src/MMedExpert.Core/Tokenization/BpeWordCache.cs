namespace MMedExpert.Core.Tokenization;

/// <summary>
/// Token ids of recently seen words (pre-tokenized pieces), looked up by span so a hit allocates nothing. Text repeats
/// words heavily, so most pieces skip BPE entirely. One cache per thread (not thread-safe); bounded: when full it is
/// cleared, which keeps memory flat on unbounded streams at the cost of a few re-merges.
/// </summary>
public sealed class BpeWordCache
{
    /// <summary>Longer pieces (long runs of letters or spaces) are rare and would only bloat the cache.</summary>
    public const int MaxWordLength = 64;

    readonly Dictionary<string, int[]> _map;
    readonly Dictionary<string, int[]>.AlternateLookup<ReadOnlySpan<char>> _lookup;
    readonly int _capacity;

    public BpeWordCache(int capacity = 1 << 16)
    {
        _capacity = capacity;
        _map = new Dictionary<string, int[]>(StringComparer.Ordinal);
        _lookup = _map.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    public bool TryGet(ReadOnlySpan<char> word, out int[] ids) => _lookup.TryGetValue(word, out ids!);

    public void Add(ReadOnlySpan<char> word, int[] ids)
    {
        if (word.Length > MaxWordLength) return;
        if (_map.Count >= _capacity) _map.Clear();
        _lookup[word] = ids;
    }
}
