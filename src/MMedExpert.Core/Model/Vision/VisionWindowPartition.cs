namespace MMedExpert.Core.Model.Vision;

/// <summary>
/// How the tower's window attention groups patches (the reference's get_window_index). Each image's grid of merged
/// tokens (2×2 patches) is cut into square windows of <c>windowTokens</c> merged tokens per side, row-major, with
/// smaller windows at the right and bottom edges. <see cref="MergedTokenOrder"/> lists the merged tokens window by
/// window (indices into the processor's order, over all images); <see cref="WindowBoundaries"/> are the cumulative
/// patch counts at window ends (cu_seqlens, starting at 0, empty windows dropped); <see cref="ImageBoundaries"/> the
/// same per image frame, for the full-attention blocks.
/// </summary>
public sealed record VisionWindowPartition(long[] MergedTokenOrder, long[] WindowBoundaries, long[] ImageBoundaries)
{
    public static VisionWindowPartition Compute(long[][] gridThw, int windowTokens, int spatialMergeSize)
    {
        int mergeUnit = spatialMergeSize * spatialMergeSize;
        var order = new List<long>();
        var windowBounds = new List<long> { 0 };
        var imageBounds = new List<long> { 0 };
        long firstToken = 0; // index of the image's first merged token in the processor's order

        foreach (var g in gridThw)
        {
            long t = g[0], rows = g[1] / spatialMergeSize, cols = g[2] / spatialMergeSize;
            for (long frame = 0; frame < t; frame++)
            {
                long frameStart = firstToken + frame * rows * cols;
                for (long top = 0; top < rows; top += windowTokens)
                    for (long left = 0; left < cols; left += windowTokens)
                    {
                        long bottom = Math.Min(top + windowTokens, rows), right = Math.Min(left + windowTokens, cols);
                        for (long r = top; r < bottom; r++)
                            for (long c = left; c < right; c++)
                                order.Add(frameStart + r * cols + c);
                        windowBounds.Add(windowBounds[^1] + (bottom - top) * (right - left) * mergeUnit);
                    }
                imageBounds.Add(imageBounds[^1] + rows * cols * mergeUnit);
            }
            firstToken += t * rows * cols;
        }
        return new VisionWindowPartition(order.ToArray(), windowBounds.ToArray(), imageBounds.ToArray());
    }

    /// <summary>Positions that undo <see cref="MergedTokenOrder"/> (argsort of a permutation).</summary>
    public long[] InverseOrder()
    {
        var inverse = new long[MergedTokenOrder.Length];
        for (long i = 0; i < MergedTokenOrder.Length; i++) inverse[MergedTokenOrder[i]] = i;
        return inverse;
    }
}
