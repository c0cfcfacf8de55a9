namespace MMedExpert.Data.Schema;

/// <summary>
/// What the guideline-based rewards need from an item: correct letter and text, options, key findings, ordered
/// guideline steps, pre-test probability, perspective and specialty. A stand-in until the Algebra reward DSL defines
/// its own Annotations type; then <see cref="From"/> becomes the one mapping to it.
/// </summary>
public sealed record RewardAnnotations(
    string Answer,
    string AnswerText,
    IReadOnlyDictionary<string, string> Options,
    IReadOnlyList<string> KeyFindings,
    IReadOnlyList<string> GuidelineSteps,
    double? PretestProbability,
    string Perspective,
    string Specialty)
{
    public static RewardAnnotations From(MedItem item) => new(
        item.Answer, item.AnswerText, item.Options, item.Guideline.KeyFindings, item.Guideline.GuidelineSteps,
        item.Guideline.PretestProbability, item.Perspective, item.Specialty);
}
