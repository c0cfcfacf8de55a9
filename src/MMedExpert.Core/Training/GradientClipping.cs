using TorchSharp;
using static TorchSharp.torch;

namespace MMedExpert.Core.Training;

/// <summary>Global-norm gradient clipping over a parameter list (as torch.nn.utils.clip_grad_norm_).</summary>
public static class GradientClipping
{
    /// <summary>
    /// The L2 norm of all gradients together (float64 accumulation), measured before clipping; when it exceeds
    /// <paramref name="maxNorm"/> (> 0), every gradient is multiplied by maxNorm / (norm + 1e-6). Parameters without a
    /// gradient are skipped. A non-finite norm is returned as is and the gradients are left alone.
    /// </summary>
    public static double ClipGlobalNorm(IEnumerable<Tensor> parameters, double maxNorm)
    {
        using var noGrad = no_grad();
        var grads = parameters.Select(p => p.grad).Where(g => g is not null).Select(g => g!).ToList();
        if (grads.Count == 0) return 0;
        double sumSquares = 0;
        foreach (var g in grads)
        {
            using var g64 = g.to_type(ScalarType.Float64);
            using var sq = g64.square().sum();
            sumSquares += sq.item<double>();
        }
        double norm = Math.Sqrt(sumSquares);
        if (maxNorm > 0 && double.IsFinite(norm) && norm > maxNorm)
        {
            double factor = maxNorm / (norm + 1e-6);
            foreach (var g in grads) g.mul_(factor);
        }
        return norm;
    }
}
