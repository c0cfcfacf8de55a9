using TorchSharp;
using static TorchSharp.torch;

namespace MMedExpert.Core.Model.Vision;

/// <summary>
/// 2D rotary position embedding of the vision tower. Each patch has a row and a column index on its image's patch
/// grid; a quarter of every head rotates with the row, a quarter with the column (the other half repeats them, as
/// rotate_half pairs dimension i with i + headDim/2). The patches are listed in merge-window order: the 2×2 patches
/// that become one language-model token are consecutive, exactly as the image processor emits the rows.
/// Holds no tensors, so nothing of it appears in the state dict (the reference keeps inv_freq as a non-persistent buffer).
/// </summary>
public sealed class VisionRotaryEmbedding
{
    private readonly int dim;
    private readonly double theta;
    private readonly int mergeSize;

    /// <param name="dim">Rotary width per axis pair: headDim / 2.</param>
    public VisionRotaryEmbedding(int dim, int spatialMergeSize, double theta = VisionConfig.RopeTheta)
    {
        this.dim = dim;
        this.theta = theta;
        mergeSize = spatialMergeSize;
    }

    /// <summary>Inverse frequencies 1 / theta^(2i/dim), computed in fp32 like the reference.</summary>
    public Tensor InverseFrequencies()
    {
        using var scope = NewDisposeScope();
        var exponent = arange(0, dim, 2, dtype: ScalarType.Float32) / (float)dim;
        return (1.0f / pow(tensor((float)theta), exponent)).MoveToOuterDisposeScope();
    }

    /// <summary>(row, column) of every patch of every image, in merge-window order; [N, 2] int64.</summary>
    public long[,] PatchPositions(long[][] gridThw)
    {
        long total = gridThw.Sum(g => g[0] * g[1] * g[2]);
        var positions = new long[total, 2];
        long n = 0;
        foreach (var g in gridThw)
        {
            long t = g[0], h = g[1], w = g[2];
            for (long frame = 0; frame < t; frame++)
                for (long blockRow = 0; blockRow < h / mergeSize; blockRow++)
                    for (long blockCol = 0; blockCol < w / mergeSize; blockCol++)
                        for (long r = 0; r < mergeSize; r++)
                            for (long c = 0; c < mergeSize; c++)
                            {
                                positions[n, 0] = blockRow * mergeSize + r;
                                positions[n, 1] = blockCol * mergeSize + c;
                                n++;
                            }
        }
        return positions;
    }

    /// <summary>Rotation angles of every patch: [N, dim] = [row · inv_freq, column · inv_freq], fp32.</summary>
    public Tensor Angles(long[][] gridThw)
    {
        using var scope = NewDisposeScope();
        long maxSide = gridThw.Max(g => Math.Max(g[1], g[2]));
        var table = outer(arange(maxSide, dtype: ScalarType.Float32), InverseFrequencies()); // [maxSide, dim/2]
        var positions = tensor(PatchPositions(gridThw));                                       // [N, 2]
        var angles = table.index_select(0, positions.flatten()).view(positions.shape[0], -1);  // [N, dim]
        return angles.MoveToOuterDisposeScope();
    }
}
