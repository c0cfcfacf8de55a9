namespace MMedExpert.Data.MedSynth;

/// <summary>
/// A drawn image and what a reader measures from the drawn shapes: the two image findings of the guideline (decided
/// from the geometry actually drawn, with the guideline's thresholds), their phrases for the key findings, and the
/// measured quantities behind them.
/// </summary>
public sealed record SceneResult(
    Canvas Canvas,
    bool Image1,
    bool Image2,
    string Image1Phrase,
    string Image2Phrase,
    IReadOnlyDictionary<string, double> Measured);

/// <summary>Draws the image of one specialty with the requested findings.</summary>
public static class Scenes
{
    public static SceneResult Draw(Scenario scenario, bool image1, bool image2, double difficulty, int size, SeededRandom rng, string? eye) =>
        scenario.Specialty switch
        {
            Schema.Vocabulary.AdultMedicine => ChestRadiograph.Draw(scenario, image1, image2, difficulty, size, rng),
            Schema.Vocabulary.Pediatrics => BrainMri.Draw(scenario, image1, image2, difficulty, size, rng),
            Schema.Vocabulary.BrainSenses => FundusPhoto.Draw(scenario, image1, image2, difficulty, size, rng, eye ?? "right"),
            Schema.Vocabulary.OncologySurgery => Histology.Draw(scenario, image1, image2, difficulty, size, rng),
            _ => throw new ArgumentException($"unknown specialty '{scenario.Specialty}'"),
        };

    internal static double Lerp(double a, double b, double t) => a + (b - a) * t;

    /// <summary>Film grain of a difficulty: none when easy, growing with d² (grain is what PNG cannot compress, so the
    /// default difficulty keeps it below one grey level).</summary>
    internal static double Grain(double d) => 0.035 * d * d;
}
