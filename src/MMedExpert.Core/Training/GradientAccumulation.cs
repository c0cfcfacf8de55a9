using static TorchSharp.torch;

namespace MMedExpert.Core.Training;

/// <summary>
/// One optimizer step's worth of micro-batches: each micro-batch loss is divided by the count before its backward, so
/// the accumulated gradient is that of the mean loss. Each micro-batch runs in its own dispose scope, so only the
/// gradients outlive it.
/// </summary>
public static class GradientAccumulation
{
    /// <summary>Runs backward for micro-batches 0..count−1 and returns the mean of their (undivided) losses.</summary>
    public static double Accumulate(int count, Func<int, Tensor> microBatchLoss)
    {
        if (count <= 0) throw new ArgumentOutOfRangeException(nameof(count), count, "must be positive");
        double total = 0;
        for (int m = 0; m < count; m++)
        {
            using var scope = NewDisposeScope();
            var loss = microBatchLoss(m);
            if (loss.numel() != 1) throw new InvalidOperationException($"the loss of micro-batch {m} is not a scalar (shape [{string.Join(", ", loss.shape)}])");
            total += loss.to_type(ScalarType.Float64).item<double>();
            (count == 1 ? loss : loss / count).backward();
        }
        return total / count;
    }
}
