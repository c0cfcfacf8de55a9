using TorchSharp;
using static TorchSharp.torch;

namespace MMedExpert.Core.Model.Text;

/// <summary>
/// Preallocated key/value cache: per layer two tensors [batch, kv_heads, capacity, head_dim]. New keys are copied in
/// place at <see cref="Length"/> and attention reads a view of the filled prefix, so decoding allocates nothing per step
/// for the cache and never concatenates.
/// </summary>
public sealed class KvCache : IDisposable
{
    readonly Tensor[] keys;
    readonly Tensor[] values;

    public long Capacity { get; }
    public long Batch { get; }
    /// <summary>Positions filled so far (the same for every sequence of the batch: padding is part of the sequence).</summary>
    public long Length { get; private set; }

    public KvCache(Qwen25VLConfig config, long batch, long capacity, ScalarType dtype, Device? device = null)
    {
        Batch = batch;
        Capacity = capacity;
        keys = new Tensor[config.NumHiddenLayers];
        values = new Tensor[config.NumHiddenLayers];
        for (int i = 0; i < keys.Length; i++)
        {
            keys[i] = zeros(new[] { batch, config.NumKeyValueHeads, capacity, config.HeadDim }, dtype, device).DetachFromDisposeScope();
            values[i] = zeros(new[] { batch, config.NumKeyValueHeads, capacity, config.HeadDim }, dtype, device).DetachFromDisposeScope();
        }
    }

    /// <summary>
    /// Writes the new keys/values [batch, kv_heads, new, head_dim] of <paramref name="layer"/> after the filled prefix and
    /// returns views of everything filled, new positions included. <see cref="Advance"/> commits the step after all layers.
    /// </summary>
    public (Tensor Keys, Tensor Values) Append(int layer, Tensor k, Tensor v)
    {
        long n = k.shape[2];
        if (Length + n > Capacity)
            throw new InvalidOperationException($"KV cache full: {Length} + {n} positions exceed its capacity of {Capacity}");
        using (var kDst = keys[layer].narrow(2, Length, n)) kDst.copy_(k);
        using (var vDst = values[layer].narrow(2, Length, n)) vDst.copy_(v);
        return (keys[layer].narrow(2, 0, Length + n), values[layer].narrow(2, 0, Length + n));
    }

    public void Advance(long n) => Length += n;

    KvCache(Tensor[] keys, Tensor[] values, long batch, long capacity, long length)
    {
        this.keys = keys;
        this.values = values;
        Batch = batch;
        Capacity = capacity;
        Length = length;
    }

    /// <summary>
    /// A cache whose row i is this cache's row <paramref name="index"/>[i] (the filled prefix copied, same
    /// <see cref="Length"/>), with room for <paramref name="capacity"/> positions. The copies stay in the autograd graph, so
    /// completions decoded on it send gradients back through a prompt encoded once for all of them (GRPO groups).
    /// </summary>
    public KvCache Select(Tensor index, long capacity)
    {
        if (capacity < Length) throw new ArgumentOutOfRangeException(nameof(capacity), capacity, $"smaller than the {Length} filled positions");
        long rows = index.shape[0];
        Tensor Copy(Tensor source)
        {
            var target = zeros(new[] { rows, source.shape[1], capacity, source.shape[3] }, source.dtype, source.device).DetachFromDisposeScope();
            if (Length > 0)
            {
                using var filled = source.narrow(2, 0, Length);
                using var picked = filled.index_select(0, index.to(source.device));
                using var destination = target.narrow(2, 0, Length);
                destination.copy_(picked);
            }
            return target;
        }
        return new KvCache(keys.Select(Copy).ToArray(), values.Select(Copy).ToArray(), rows, capacity, Length);
    }

    /// <summary>
    /// Moves the shared cursor (serving: a jump over positions no row uses, or the cursor after a compaction). Positions
    /// past the cursor keep whatever they held; the attention mask decides what is read.
    /// </summary>
    public void SetLength(long length)
    {
        if (length < 0 || length > Capacity) throw new ArgumentOutOfRangeException(nameof(length), length, $"outside [0, {Capacity}]");
        Length = length;
    }

    /// <summary>
    /// Copies the filled prefix [0, source.Length) of <paramref name="source"/>'s row <paramref name="sourceRow"/> into this
    /// cache's row <paramref name="row"/> at columns [offset, offset + source.Length). Keys are stored already rotated, so a
    /// prompt's keys/values stay valid at any column; the caller's rope delta keeps later positions right.
    /// </summary>
    public void CopyRowFrom(KvCache source, long sourceRow, long row, long offset)
    {
        if (source.keys.Length != keys.Length) throw new ArgumentException($"{source.keys.Length} layers copied into a cache of {keys.Length}");
        if (row < 0 || row >= Batch) throw new ArgumentOutOfRangeException(nameof(row), row, $"outside the {Batch} rows");
        if (sourceRow < 0 || sourceRow >= source.Batch) throw new ArgumentOutOfRangeException(nameof(sourceRow), sourceRow, $"outside the {source.Batch} rows");
        long n = source.Length;
        if (offset < 0 || offset + n > Capacity) throw new ArgumentOutOfRangeException(nameof(offset), offset, $"{n} positions at {offset} exceed the capacity {Capacity}");
        if (n == 0) return;
        for (int i = 0; i < keys.Length; i++)
        {
            Copy(source.keys[i], keys[i]);
            Copy(source.values[i], values[i]);
        }
        void Copy(Tensor from, Tensor to)
        {
            using var src = from.narrow(0, sourceRow, 1).narrow(2, 0, n);
            using var dst = to.narrow(0, row, 1).narrow(2, offset, n);
            dst.copy_(src);
        }
    }

    /// <summary>
    /// Moves the given <paramref name="columns"/> (ascending) of row <paramref name="row"/>, keys and values of every layer,
    /// to columns [destination, destination + columns.Length) of the same row, in order (serving: packing a row's live
    /// positions together when the slot cache compacts). Source and destination may overlap: the columns are gathered
    /// into a new tensor first. The cursor is not moved.
    /// </summary>
    public void GatherRow(long row, long[] columns, long destination)
    {
        if (row < 0 || row >= Batch) throw new ArgumentOutOfRangeException(nameof(row), row, $"outside the {Batch} rows");
        long n = columns.Length;
        if (destination < 0 || destination + n > Capacity)
            throw new ArgumentOutOfRangeException(nameof(destination), destination, $"{n} positions at {destination} exceed the capacity {Capacity}");
        for (int i = 0; i < n; i++)
            if (columns[i] < 0 || columns[i] >= Capacity || (i > 0 && columns[i] <= columns[i - 1]))
                throw new ArgumentException($"columns must be ascending positions in [0, {Capacity}) (column {i} is {columns[i]})", nameof(columns));
        if (n == 0) return;
        using var index = tensor(columns, device: keys[0].device);
        foreach (var t in keys.Concat(values))
        {
            using var cells = t.narrow(0, row, 1);
            using var picked = cells.index_select(2, index);
            using var dst = cells.narrow(2, destination, n);
            dst.copy_(picked);
        }
    }

    /// <summary>
    /// A cache over the first <paramref name="rows"/> rows of this one, sharing its storage and cursor value (serving:
    /// decode only the rows in use). Writes through the view land in this cache; the view's own <see cref="Length"/>
    /// advances on its own, so the owner sets this cache's with <see cref="SetLength"/>. Disposing the view frees views only.
    /// </summary>
    public KvCache Rows(long rows)
    {
        if (rows <= 0 || rows > Batch) throw new ArgumentOutOfRangeException(nameof(rows), rows, $"outside [1, {Batch}]");
        return new KvCache(keys.Select(k => k.narrow(0, 0, rows).DetachFromDisposeScope()).ToArray(),
            values.Select(v => v.narrow(0, 0, rows).DetachFromDisposeScope()).ToArray(), rows, Capacity, Length);
    }

    public void Dispose()
    {
        foreach (var t in keys) t.Dispose();
        foreach (var t in values) t.Dispose();
    }
}
