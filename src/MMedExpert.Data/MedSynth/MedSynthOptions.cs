namespace MMedExpert.Data.MedSynth;

/// <summary>
/// Settings of a MedSynth run. <see cref="Difficulty"/> in [0, 1] lowers image contrast, moves findings and vital signs
/// towards their thresholds and adds distractors; it never makes an item ambiguous. Split fractions are for sft, rl and
/// val; test gets the rest. Images are square, <see cref="ImageSize"/> pixels a side (multiples of 28 suit Qwen2.5-VL).
/// <see cref="ImagingReport"/> adds a one-line imaging report that states the two image findings in the question text
/// (as a radiologist's report would): the guideline still needs both pairings, but the findings no longer have to be
/// seen. A control for learnability studies: it separates learning to see from learning the guideline.
/// </summary>
public sealed record MedSynthOptions(
    int N = 10_000,
    ulong Seed = 0,
    double Difficulty = 0.3,
    int ImageSize = 112,
    double SftFraction = 0.4,
    double RlFraction = 0.4,
    double ValFraction = 0.1,
    bool ImagingReport = false)
{
    public void Validate()
    {
        if (N < 1) throw new DataException($"--n must be at least 1 (got {N})");
        if (!(Difficulty >= 0 && Difficulty <= 1)) throw new DataException($"--difficulty must be in [0, 1] (got {Difficulty})");
        if (ImageSize < 32 || ImageSize > 1024) throw new DataException($"--image-size must be in [32, 1024] pixels (got {ImageSize})");
        double sum = SftFraction + RlFraction + ValFraction;
        if (SftFraction < 0 || RlFraction < 0 || ValFraction < 0 || sum > 1)
            throw new DataException($"split fractions must be non-negative with sft + rl + val ≤ 1 (got {SftFraction}, {RlFraction}, {ValFraction})");
    }
}
