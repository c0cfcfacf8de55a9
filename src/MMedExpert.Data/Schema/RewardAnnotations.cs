using MMedExpert.Algebra.Rewards;

namespace MMedExpert.Data.Schema;

/// <summary>The one mapping from an MMedExpert item to the annotations the guideline-based rewards read.</summary>
public static class RewardAnnotations
{
    /// <summary>
    /// Answer letter, options, key findings (verbatim phrases, no alternatives), guideline steps (each step one keyword:
    /// its label, which the reference traces use as the step's prefix), pre-test probability, specialty, the question
    /// type "diagnosis" and the perspective.
    /// </summary>
    public static Annotations From(MedItem item) => Annotations.Create(
        item.Answer,
        item.Options.ToDictionary(kv => kv.Key, kv => kv.Value),
        item.Guideline.KeyFindings,
        item.Guideline.GuidelineSteps.Select(step => (IEnumerable<string>)[step]),
        item.Guideline.PretestProbability,
        item.Specialty,
        "diagnosis",
        item.Perspective);
}
