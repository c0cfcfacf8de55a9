namespace MMedExpert.Data.Schema;

/// <summary>
/// Guideline annotations of an item, read by the guideline-based rewards: the key findings a good trace mentions
/// (verbatim in the reference reasoning), the guideline steps in the order a trace should follow, and the pre-test
/// probability that a Bayesian trace states (present exactly when the perspective is bayesian).
/// </summary>
public sealed record GuidelineAnnotations(
    IReadOnlyList<string> KeyFindings,
    IReadOnlyList<string> GuidelineSteps,
    double? PretestProbability);

/// <summary>
/// One MMedExpert item (one JSON line, snake_case): a multimodal multiple-choice question with its reference reasoning
/// trace (<c>&lt;think&gt;…&lt;/think&gt;&lt;answer&gt;…&lt;/answer&gt;</c>) written from one clinical perspective.
/// <see cref="Images"/> are paths relative to the JSONL file's folder.
/// </summary>
public sealed record MedItem(
    string Id,
    string Specialty,
    IReadOnlyList<string> Images,
    string Question,
    IReadOnlyDictionary<string, string> Options,
    string Answer,
    string Reasoning,
    string Perspective,
    GuidelineAnnotations Guideline,
    string Split)
{
    /// <summary>The text of the correct option.</summary>
    public string AnswerText => Options[Answer];
}
