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

    public void Dispose()
    {
        foreach (var t in keys) t.Dispose();
        foreach (var t in values) t.Dispose();
    }
}
