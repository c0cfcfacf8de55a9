using MMedExpert.Core.Runtime;

namespace MMedExpert.Core.Training;

/// <summary>
/// Batches of similar length (less padding) that are still shuffled: each epoch shuffles the samples by
/// (seed, epoch), cuts them into chunks of <c>chunkBatches · batchSize</c>, sorts each chunk by length (longest first),
/// cuts the chunks into batches and shuffles the batch order. Every batch is a pure function of (seed, index), so a
/// resumed run sees exactly the batches the interrupted one would have.
/// </summary>
public sealed class LengthBucketing
{
    readonly int[] lengths;
    readonly long seed;
    int cachedEpoch = -1;
    IReadOnlyList<int[]> cached = Array.Empty<int[]>();

    public int BatchSize { get; }
    public int ChunkBatches { get; }
    public bool DropLast { get; }
    public int BatchesPerEpoch { get; }

    public LengthBucketing(IReadOnlyList<int> lengths, int batchSize, int chunkBatches = 50, long seed = 0, bool dropLast = false)
    {
        if (lengths.Count == 0) throw new ArgumentException("no samples to batch", nameof(lengths));
        if (batchSize <= 0) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "must be positive");
        if (chunkBatches <= 0) throw new ArgumentOutOfRangeException(nameof(chunkBatches), chunkBatches, "must be positive");
        this.lengths = lengths.ToArray();
        this.seed = seed;
        BatchSize = batchSize;
        ChunkBatches = chunkBatches;
        DropLast = dropLast;
        BatchesPerEpoch = dropLast ? lengths.Count / batchSize : (lengths.Count + batchSize - 1) / batchSize;
        if (BatchesPerEpoch == 0) throw new ArgumentException($"fewer samples ({lengths.Count}) than one batch ({batchSize}) with dropLast", nameof(lengths));
    }

    /// <summary>The batches (sample indices) of one epoch.</summary>
    public IReadOnlyList<int[]> Epoch(int epoch)
    {
        var rng = new SplitMix64(Seeds.Derive(seed, epoch));
        var order = Enumerable.Range(0, lengths.Length).ToArray();
        rng.Shuffle(order);
        var batches = new List<int[]>();
        int chunk = ChunkBatches * BatchSize;
        for (int start = 0; start < order.Length; start += chunk)
        {
            // Stable sort by decreasing length: ties keep the shuffled order.
            var sorted = order.Skip(start).Take(chunk).Select((index, k) => (index, k))
                .OrderByDescending(x => lengths[x.index]).ThenBy(x => x.k).Select(x => x.index).ToArray();
            for (int b = 0; b < sorted.Length; b += BatchSize)
                batches.Add(sorted.Skip(b).Take(BatchSize).ToArray());
        }
        if (DropLast) batches.RemoveAll(b => b.Length < BatchSize);
        rng.Shuffle(batches);
        return batches;
    }

    /// <summary>Batch number <paramref name="index"/> counted over all epochs (epoch = index / BatchesPerEpoch).</summary>
    public int[] BatchAt(long index)
    {
        if (index < 0) throw new ArgumentOutOfRangeException(nameof(index), index, "must be non-negative");
        int epoch = checked((int)(index / BatchesPerEpoch));
        lock (this)
        {
            if (epoch != cachedEpoch)
            {
                cached = Epoch(epoch);
                cachedEpoch = epoch;
            }
            return cached[(int)(index % BatchesPerEpoch)];
        }
    }
}
