using TorchSharp;
using static TorchSharp.torch;

namespace MMedExpert.Core.Training.Grpo;

/// <summary>Estimators of KL(π ‖ π_ref) from samples of π (Schulman, "Approximating KL divergence").</summary>
public enum KlEstimator { K1, K2, K3 }

/// <summary>How token losses become one number (the choice changes the effective weight of long answers).</summary>
public enum LossAggregation
{
    /// <summary>Mean over every completion token of the batch (DAPO).</summary>
    TokenMean,
    /// <summary>Mean over sequences of each sequence's token mean (the original GRPO).</summary>
    SequenceMeanTokenMean,
    /// <summary>Mean over sequences of each sequence's token sum.</summary>
    SequenceMeanTokenSum,
    /// <summary>Sum of token losses divided by a constant (batch size × max completion length): Dr.GRPO.</summary>
    ConstantNormalizer,
}

public sealed record GrpoLossOptions
{
    public double ClipLow { get; init; } = 0.2;
    public double ClipHigh { get; init; } = 0.28;
    /// <summary>KL penalty weight; 0 turns the reference policy off.</summary>
    public double Beta { get; init; } = 0.04;
    public KlEstimator Kl { get; init; } = KlEstimator.K3;
    public LossAggregation Aggregation { get; init; } = LossAggregation.TokenMean;
    /// <summary>The constant of <see cref="LossAggregation.ConstantNormalizer"/> (max completion length).</summary>
    public int MaxCompletionLength { get; init; } = 256;
}

/// <summary>The loss and what is logged about it.</summary>
public sealed record GrpoLossResult(Tensor Loss, double ClipFraction, double KlMean, double RatioMean);

/// <summary>
/// The clipped policy-gradient loss of GRPO with a KL penalty, over completion tokens:
/// token loss = −min(ρ·A, clip(ρ, 1−ε_low, 1+ε_high)·A) + β·KL, with ρ = π/π_rollout per token and A the sequence's
/// advantage (from the Algebra library) broadcast over its tokens.
/// </summary>
public static class GrpoLoss
{
    /// <param name="logProbs">[B, T] log-probabilities of the completion tokens under the policy being trained (with grad).</param>
    /// <param name="rolloutLogProbs">[B, T] the same under the policy that sampled them (no grad).</param>
    /// <param name="referenceLogProbs">[B, T] the same under the reference policy, or null when β = 0.</param>
    /// <param name="advantages">[B] one advantage per completion.</param>
    /// <param name="mask">[B, T] 1 for completion tokens, 0 for padding.</param>
    public static GrpoLossResult Compute(Tensor logProbs, Tensor rolloutLogProbs, Tensor? referenceLogProbs, Tensor advantages, Tensor mask, GrpoLossOptions o)
    {
        using var scope = NewDisposeScope();
        var m = mask.to_type(ScalarType.Float32);
        var adv = advantages.to_type(ScalarType.Float32).unsqueeze(1);
        var ratio = (logProbs - rolloutLogProbs.detach()).exp();
        var unclipped = ratio * adv;
        var clipped = ratio.clamp(1 - o.ClipLow, 1 + o.ClipHigh) * adv;
        var tokenLoss = -minimum(unclipped, clipped);

        double klMean = 0;
        if (o.Beta != 0)
        {
            if (referenceLogProbs is null) throw new ArgumentException("β ≠ 0 needs the reference policy's log-probabilities");
            var kl = Kl(logProbs, referenceLogProbs.detach(), o.Kl);
            tokenLoss = tokenLoss + o.Beta * kl;
            klMean = MaskedMean(kl.detach(), m);
        }

        var loss = Aggregate(tokenLoss, m, o);
        // A token is clipped when the clipped term is the smaller one: the gradient through ρ is then zero.
        var isClipped = (clipped < unclipped).to_type(ScalarType.Float32);
        double clipFraction = MaskedMean(isClipped, m);
        double ratioMean = MaskedMean(ratio.detach(), m);
        return new GrpoLossResult(loss.MoveToOuterDisposeScope(), clipFraction, klMean, ratioMean);
    }

    /// <summary>Per-token KL(π ‖ π_ref) estimate from log π and log π_ref of tokens sampled from π.</summary>
    public static Tensor Kl(Tensor logProbs, Tensor referenceLogProbs, KlEstimator estimator)
    {
        var logRatio = referenceLogProbs - logProbs; // log(π_ref/π)
        return estimator switch
        {
            KlEstimator.K1 => -logRatio,
            KlEstimator.K2 => 0.5 * logRatio.pow(2),
            KlEstimator.K3 => logRatio.exp() - logRatio - 1,
            _ => throw new ArgumentOutOfRangeException(nameof(estimator)),
        };
    }

    public static Tensor Aggregate(Tensor tokenLoss, Tensor mask, GrpoLossOptions o)
    {
        var masked = tokenLoss * mask;
        var lengths = mask.sum(1).clamp_min(1);
        return o.Aggregation switch
        {
            LossAggregation.TokenMean => masked.sum() / mask.sum().clamp_min(1),
            LossAggregation.SequenceMeanTokenMean => (masked.sum(1) / lengths).mean(),
            LossAggregation.SequenceMeanTokenSum => masked.sum(1).mean(),
            LossAggregation.ConstantNormalizer => masked.sum() / (tokenLoss.shape[0] * (double)o.MaxCompletionLength),
            _ => throw new ArgumentOutOfRangeException(nameof(o)),
        };
    }

    static double MaskedMean(Tensor x, Tensor mask)
    {
        double n = mask.sum().item<float>();
        return n == 0 ? 0 : (x * mask).sum().item<float>() / n;
    }
}
