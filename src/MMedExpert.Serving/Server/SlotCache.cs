using MMedExpert.Core.Model;
using MMedExpert.Core.Model.Text;
using static TorchSharp.torch;

namespace MMedExpert.Serving.Server;

/// <summary>
/// The decoding slots of continuous batching: ONE key/value cache [max batch rows, capacity] with a shared cursor
/// (<see cref="KvCache.Length"/>), and per row a key mask and a rope delta. The model's decode step puts every row's new
/// token at the cursor, at text position cursor + delta, attending to the keys its mask allows, so rows that joined at
/// different times decode together:
/// <list type="bullet">
/// <item>a prompt of length L prefilled alone is copied into columns [t − L, t) of a free row when the cursor is at t
///   (keys are stored already rotated, so they can move), its mask is 1 there, and its delta is its own delta + L − t,
///   so its next position is L + delta as in a batch-1 generation;</item>
/// <item>when t &lt; L the cursor jumps to L (the gap is masked for everyone; active deltas lose the jump);</item>
/// <item>when the cursor reaches the capacity, the cache is packed: each used row's live columns (its mask's ones, in
///   order) move to end at a new cursor, the longest row's count of live columns, and its delta gains the distance the
///   cursor moved back. Gaps left by jumps and by finished neighbours disappear, and since a sequence holds at most
///   max_model_len positions (the server refuses longer requests), packing always makes room when the capacity exceeds
///   max_model_len: no mix of ages and jumps can fill the cache for good.</item>
/// </list>
/// Free rows are fed padding with an empty mask (a query always attends to itself, so no row is empty); only the rows up
/// to the highest used one are decoded, and rows are taken lowest first to keep that range short.
/// </summary>
public sealed class SlotCache : IDisposable
{
    readonly long[][] mask;
    readonly long[] deltas;
    readonly long[] starts;
    readonly bool[] used;

    public KvCache Cache { get; }
    public int Rows { get; }
    public long Capacity { get; }
    public long Cursor => Cache.Length;
    public int FreeCount => used.Count(u => !u);
    public int UsedCount => used.Count(u => u);
    /// <summary>Rows a decode step covers: up to the highest used one.</summary>
    public int RowsInUse => Array.LastIndexOf(used, true) + 1;
    /// <summary>Compactions so far (for tests and statistics).</summary>
    public int Compactions { get; private set; }

    public SlotCache(Qwen25VLConfig config, int rows, long capacity, ScalarType dtype, Device device)
    {
        Rows = rows;
        Capacity = capacity;
        Cache = new KvCache(config, rows, capacity, dtype, device);
        mask = Enumerable.Range(0, rows).Select(_ => new long[capacity]).ToArray();
        deltas = new long[rows];
        starts = new long[rows];
        used = new bool[rows];
    }

    public bool IsUsed(int row) => used[row];
    public long StartOf(int row) => starts[row];
    public long DeltaOf(int row) => deltas[row];

    /// <summary>
    /// Makes the cursor at least <paramref name="promptLength"/> so a prompt fits before it (restarts at the prompt's
    /// length when no row is used).
    /// </summary>
    public void ReserveFor(long promptLength)
    {
        if (promptLength > Capacity) throw new ArgumentOutOfRangeException(nameof(promptLength), promptLength, $"exceeds the slot capacity {Capacity}");
        if (UsedCount == 0) { Cache.SetLength(promptLength); return; }
        if (Cursor >= promptLength) return;
        long jump = promptLength - Cursor;
        for (int r = 0; r < Rows; r++) if (used[r]) deltas[r] -= jump;
        Cache.SetLength(promptLength);
    }

    /// <summary>Takes the lowest free row and copies <paramref name="prompt"/>'s row 0 into it, ending at the cursor.</summary>
    public int Place(KvCache prompt, long ropeDelta)
    {
        int row = Array.IndexOf(used, false);
        if (row < 0) throw new InvalidOperationException("no free slot");
        long length = prompt.Length, start = Cursor - length;
        if (start < 0) throw new InvalidOperationException($"cursor {Cursor} is before the end of a {length}-token prompt (ReserveFor first)");
        Cache.CopyRowFrom(prompt, 0, row, start);
        Array.Clear(mask[row]);
        Array.Fill(mask[row], 1L, (int)start, (int)length);
        deltas[row] = ropeDelta + length - Cursor;
        starts[row] = start;
        used[row] = true;
        return row;
    }

    public void Free(int row)
    {
        used[row] = false;
        Array.Clear(mask[row]);
        if (UsedCount == 0) Cache.SetLength(0);
    }

    /// <summary>
    /// Readies one decode step: compacts when the cursor is at the capacity, opens the cursor column for used rows, and
    /// returns the key mask [rows, cursor + 1] and the rope deltas [rows] of the rows in use.
    /// </summary>
    public (Tensor Mask, Tensor Deltas, int Rows) PrepareStep(Device device)
    {
        if (Cursor >= Capacity) Compact();
        int rows = RowsInUse;
        long width = Cursor + 1;
        var flat = new long[rows * width];
        for (int r = 0; r < rows; r++)
        {
            if (used[r]) mask[r][Cursor] = 1;
            Array.Copy(mask[r], 0, flat, r * width, width);
        }
        return (tensor(flat, new long[] { rows, width }).to(device), tensor(deltas[..rows]).to(device), rows);
    }

    /// <summary>Commits a step decoded through a view of the first rows (the view advanced its own cursor).</summary>
    public void CommitStep() => Cache.SetLength(Cursor + 1);

    void Compact()
    {
        var live = new long[Rows][];
        long cursor = 0;
        for (int r = 0; r < Rows; r++)
        {
            if (!used[r]) continue;
            live[r] = Enumerable.Range(0, (int)Cursor).Where(c => mask[r][c] == 1).Select(c => (long)c).ToArray();
            cursor = Math.Max(cursor, live[r].Length);
        }
        if (cursor >= Capacity) throw new InvalidOperationException($"slot cache full: a sequence holds all {Capacity} positions");
        long back = Cursor - cursor;
        for (int r = 0; r < Rows; r++)
        {
            Array.Clear(mask[r]);
            if (!used[r]) continue;
            long start = cursor - live[r].Length;
            Cache.GatherRow(r, live[r], start);
            Array.Fill(mask[r], 1L, (int)start, live[r].Length);
            starts[r] = start;
            deltas[r] += back;
        }
        Cache.SetLength(cursor);
        Compactions++;
    }

    public void Dispose() => Cache.Dispose();
}
