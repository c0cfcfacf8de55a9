namespace MMedExpert.Core.Training;

/// <summary>
/// Learning rate for optimizer step s = 1..total: linear warmup to the peak over the first <c>warmup</c> steps
/// (lr(s) = peak·s/warmup), then a half cosine from the peak at s = warmup down to <c>min</c> at s = total.
/// Unlike transformers' get_cosine_schedule_with_warmup (which evaluates at s − 1), the first step never has lr 0.
/// </summary>
public sealed record CosineSchedule(double PeakLearningRate, int WarmupSteps, int TotalSteps, double MinLearningRate = 0)
{
    public double At(long step)
    {
        if (TotalSteps <= 0) throw new ArgumentOutOfRangeException(nameof(TotalSteps), TotalSteps, "must be positive");
        if (step < 1) step = 1;
        if (step > TotalSteps) step = TotalSteps;
        if (WarmupSteps > 0 && step <= WarmupSteps) return PeakLearningRate * step / WarmupSteps;
        int decaySteps = TotalSteps - WarmupSteps;
        if (decaySteps <= 0) return PeakLearningRate;
        double progress = (double)(step - WarmupSteps) / decaySteps;
        return MinLearningRate + (PeakLearningRate - MinLearningRate) * 0.5 * (1 + Math.Cos(Math.PI * progress));
    }
}
