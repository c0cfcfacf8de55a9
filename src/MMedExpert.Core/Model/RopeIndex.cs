using TorchSharp;
using static TorchSharp.torch;

namespace MMedExpert.Core.Model;

/// <summary>
/// The 3D positions (temporal, height, width) of M-RoPE for a batch of token sequences, as `get_rope_index` of the
/// reference computes them for images:
/// <list type="bullet">
/// <item>text tokens: all three positions equal, counting on from the previous maximum + 1;</item>
/// <item>the image pad tokens of one image (t × h/2 × w/2 of them after the 2×2 merge), in row-major order: temporal = 0
/// (images have one temporal patch) + offset, height = row + offset, width = column + offset, where offset is the
/// position the image starts at;</item>
/// <item>padding (attention mask 0): position 1, ignored by the masked attention.</item>
/// </list>
/// The rope delta of a sequence is max position + 1 − sequence length (padding included): during generation the next token's
/// position is (tokens so far, padding included) + delta.
/// </summary>
public static class RopeIndex
{
    /// <param name="inputIds">[batch, seq] int64</param>
    /// <param name="imageGridThw">[images, 3] int64 grids (in patches, before the merge) in order of appearance over the batch</param>
    /// <param name="attentionMask">[batch, seq] 1 = token, 0 = padding; null = no padding</param>
    /// <returns>position ids [3, batch, seq] int64 and rope deltas [batch] int64</returns>
    public static (Tensor PositionIds, Tensor RopeDeltas) Compute(Qwen25VLConfig config, Tensor inputIds, Tensor? imageGridThw, Tensor? attentionMask)
    {
        long batch = inputIds.shape[0], seq = inputIds.shape[1];
        long[] ids = inputIds.to_type(ScalarType.Int64).cpu().contiguous().data<long>().ToArray();
        long[] mask = attentionMask is null ? Enumerable.Repeat(1L, ids.Length).ToArray() : attentionMask.to_type(ScalarType.Int64).cpu().contiguous().data<long>().ToArray();
        long[] grids = imageGridThw is null ? Array.Empty<long>() : imageGridThw.to_type(ScalarType.Int64).cpu().contiguous().data<long>().ToArray();
        int merge = config.Vision.SpatialMergeSize;

        var positions = new long[3 * batch * seq];
        Array.Fill(positions, 1L);
        var deltas = new long[batch];
        int image = 0;
        for (long b = 0; b < batch; b++)
        {
            // The sequence's real tokens and where they sit in the padded row.
            var slots = new List<long>();
            for (long i = 0; i < seq; i++) if (mask[b * seq + i] != 0) slots.Add(i);
            var t = new long[slots.Count];
            var h = new long[slots.Count];
            var w = new long[slots.Count];
            long next = 0; // the position of the next text token
            int k = 0;
            while (k < slots.Count)
            {
                long token = ids[b * seq + slots[k]];
                // An image starts at an image pad token that follows the vision-start token (as the reference detects it).
                bool imageStarts = token == config.ImageTokenId && k > 0 && ids[b * seq + slots[k - 1]] == config.VisionStartTokenId;
                if (!imageStarts)
                {
                    t[k] = h[k] = w[k] = next++;
                    k++;
                    continue;
                }
                if (3 * image + 2 >= grids.Length)
                    throw new ArgumentException($"sequence {b} has more images than image_grid_thw rows ({grids.Length / 3})");
                long gt = grids[3 * image], gh = grids[3 * image + 1] / merge, gw = grids[3 * image + 2] / merge;
                image++;
                long count = gt * gh * gw;
                if (k + count > slots.Count)
                    throw new ArgumentException($"sequence {b}: image {image - 1} needs {count} image tokens but the sequence ends after {slots.Count - k}");
                long start = next, maxPos = start;
                for (long ti = 0; ti < gt; ti++)
                    for (long hi = 0; hi < gh; hi++)
                        for (long wi = 0; wi < gw; wi++, k++)
                        {
                            // Images have one temporal patch per 2 frames; the reference scales t by seconds-per-grid, 0 for images.
                            t[k] = start;
                            h[k] = start + hi;
                            w[k] = start + wi;
                            maxPos = Math.Max(maxPos, Math.Max(h[k], w[k]));
                        }
                next = maxPos + 1;
            }
            long max = -1;
            for (int i = 0; i < slots.Count; i++)
            {
                positions[(0 * batch + b) * seq + slots[i]] = t[i];
                positions[(1 * batch + b) * seq + slots[i]] = h[i];
                positions[(2 * batch + b) * seq + slots[i]] = w[i];
                max = Math.Max(max, Math.Max(t[i], Math.Max(h[i], w[i])));
            }
            deltas[b] = max + 1 - seq;
        }
        if (3 * image != grids.Length)
            throw new ArgumentException($"image_grid_thw has {grids.Length / 3} rows but the token ids hold {image} images");
        return (tensor(positions, new[] { 3L, batch, seq }, ScalarType.Int64).to(inputIds.device),
                tensor(deltas, ScalarType.Int64).to(inputIds.device));
    }
}
