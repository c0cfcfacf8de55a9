namespace MMedExpert.Core.Tokenization;

/// <summary>
/// A byte-level BPE model: ids for the 256 byte symbols and a rank for every merge. A word (the UTF-8 bytes of one
/// pre-tokenized piece) starts as byte symbols; repeatedly the adjacent pair with the lowest merge rank, leftmost on
/// ties, is replaced by its merged token, until no adjacent pair has a merge. That is the reference's rule (its
/// priority queue pops the lowest (rank, position)); both paths below follow it exactly.
/// </summary>
public sealed class BpeModel
{
    readonly int[] _byteIds;
    readonly Dictionary<long, Merge> _merges;

    /// <summary>Words with more bytes than this use the O(n log n) heap path instead of rescanning pair ranks.</summary>
    readonly int _linearScanLimit;

    public const int DefaultLinearScanLimit = 96;

    readonly record struct Merge(int Rank, int NewId);

    /// <param name="byteIds">Token id of each byte 0..255.</param>
    /// <param name="merges">(left id, right id, merged id) in rank order; a later duplicate of a pair wins, as in the reference.</param>
    /// <param name="linearScanLimit">Longest word (in bytes) merged by rescanning; longer ones use the heap. Both give the
    /// same ids; the knob exists so tests can check that.</param>
    public BpeModel(int[] byteIds, IReadOnlyList<(int Left, int Right, int Merged)> merges, int linearScanLimit = DefaultLinearScanLimit)
    {
        if (linearScanLimit is < 1 or > 4096) throw new ArgumentOutOfRangeException(nameof(linearScanLimit));
        _linearScanLimit = linearScanLimit;
        if (byteIds.Length != 256) throw new ArgumentException("need 256 byte ids", nameof(byteIds));
        _byteIds = byteIds;
        _merges = new Dictionary<long, Merge>(merges.Count);
        for (int rank = 0; rank < merges.Count; rank++)
        {
            var (l, r, m) = merges[rank];
            _merges[Key(l, r)] = new Merge(rank, m);
        }
    }

    /// <summary>The model of a tokenizer definition: its byte symbols and its merges resolved to ids.</summary>
    public static BpeModel FromDefinition(TokenizerDefinition definition, int linearScanLimit = DefaultLinearScanLimit)
    {
        string file = definition.SourcePath;
        var byteIds = new int[256];
        for (int b = 0; b < 256; b++)
            byteIds[b] = definition.Vocab.TryGetValue(ByteLevelAlphabet.ByteToChar[b].ToString(), out int id)
                ? id : throw new TokenizerException(file, "model.vocab", $"missing the byte-level symbol for byte 0x{b:X2}");
        var merges = new List<(int, int, int)>(definition.Merges.Count);
        // Looked up by span so the merged string need not be allocated for each of ~150k merges.
        if (definition.Vocab is not Dictionary<string, int> vocab || !vocab.TryGetAlternateLookup<ReadOnlySpan<char>>(out var spans))
            spans = new Dictionary<string, int>(definition.Vocab, StringComparer.Ordinal).GetAlternateLookup<ReadOnlySpan<char>>();
        Span<char> buffer = stackalloc char[256];
        for (int i = 0; i < definition.Merges.Count; i++)
        {
            var (a, b) = definition.Merges[i];
            int Id(ReadOnlySpan<char> t) => spans.TryGetValue(t, out int id)
                ? id : throw new TokenizerException(file, $"model.merges[{i}]", $"token \"{t}\" is not in model.vocab");
            merges.Add((Id(a), Id(b), Id(TokenizerFile.Concat(a, b, buffer))));
        }
        return new BpeModel(byteIds, merges, linearScanLimit);
    }

    public int MergeCount => _merges.Count;

    static long Key(int left, int right) => ((long)left << 32) | (uint)right;

    int RankOf(int left, int right) => _merges.TryGetValue(Key(left, right), out var m) ? m.Rank : int.MaxValue;

    /// <summary>Appends the token ids of one word. <paramref name="appliedRanks"/>, when given, receives the rank of
    /// every merge applied, in order (used to cut a vocabulary down to what some texts need).</summary>
    public void EncodeWord(ReadOnlySpan<byte> utf8, List<int> output, List<int>? appliedRanks = null)
    {
        int n = utf8.Length;
        if (n == 0) return;
        if (n == 1) { output.Add(_byteIds[utf8[0]]); return; }
        if (n <= _linearScanLimit) EncodeShort(utf8, output, appliedRanks);
        else EncodeLong(utf8, output, appliedRanks);
    }

    /// <summary>Short words: arrays of symbols and of adjacent-pair ranks; each step scans the ranks (plain ints) and
    /// looks up only the two pairs a merge changes.</summary>
    void EncodeShort(ReadOnlySpan<byte> utf8, List<int> output, List<int>? appliedRanks)
    {
        int n = utf8.Length;
        Span<int> sym = stackalloc int[n];
        Span<int> rank = stackalloc int[n];
        for (int i = 0; i < n; i++) sym[i] = _byteIds[utf8[i]];
        for (int i = 0; i + 1 < n; i++) rank[i] = RankOf(sym[i], sym[i + 1]);

        while (n > 1)
        {
            int best = -1, bestRank = int.MaxValue;
            for (int i = 0; i + 1 < n; i++)
                if (rank[i] < bestRank) { bestRank = rank[i]; best = i; }
            if (best < 0) break;

            appliedRanks?.Add(bestRank);
            sym[best] = _merges[Key(sym[best], sym[best + 1])].NewId;
            for (int i = best + 1; i + 1 < n; i++) sym[i] = sym[i + 1];
            for (int i = best + 1; i + 1 < n - 1; i++) rank[i] = rank[i + 1];
            n--;
            if (best > 0) rank[best - 1] = RankOf(sym[best - 1], sym[best]);
            if (best + 1 < n) rank[best] = RankOf(sym[best], sym[best + 1]);
        }
        for (int i = 0; i < n; i++) output.Add(sym[i]);
    }

    /// <summary>Long words (whitespace runs, long letter runs): a doubly linked list of symbols and a min-heap of
    /// candidate merges keyed (rank, position); stale candidates are skipped when popped.</summary>
    void EncodeLong(ReadOnlySpan<byte> utf8, List<int> output, List<int>? appliedRanks)
    {
        int n = utf8.Length;
        var sym = new int[n];
        var prev = new int[n];
        var next = new int[n];
        var alive = new bool[n];
        var heap = new PriorityQueue<(int Pos, int Left, int Right), (int Rank, int Pos)>();
        for (int i = 0; i < n; i++)
        {
            sym[i] = _byteIds[utf8[i]];
            prev[i] = i - 1;
            next[i] = i + 1 < n ? i + 1 : -1;
            alive[i] = true;
        }
        void Push(int pos)
        {
            int nx = next[pos];
            if (nx < 0) return;
            if (_merges.TryGetValue(Key(sym[pos], sym[nx]), out var m))
                heap.Enqueue((pos, sym[pos], sym[nx]), (m.Rank, pos));
        }
        for (int i = 0; i + 1 < n; i++) Push(i);

        while (heap.TryDequeue(out var c, out var key))
        {
            int pos = c.Pos;
            if (!alive[pos] || sym[pos] != c.Left) continue;
            int nx = next[pos];
            if (nx < 0 || sym[nx] != c.Right) continue;

            appliedRanks?.Add(key.Rank);
            sym[pos] = _merges[Key(c.Left, c.Right)].NewId;
            alive[nx] = false;
            next[pos] = next[nx];
            if (next[nx] >= 0) prev[next[nx]] = pos;
            if (prev[pos] >= 0) Push(prev[pos]);
            Push(pos);
        }
        for (int i = 0; i >= 0; i = next[i]) output.Add(sym[i]);
    }
}
