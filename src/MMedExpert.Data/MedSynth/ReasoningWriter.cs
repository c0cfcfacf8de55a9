using System.Globalization;
using MMedExpert.Data.Schema;

namespace MMedExpert.Data.MedSynth;

/// <summary>What a reference trace is written from: the case's findings (phrased), the pairings and the options.</summary>
public sealed record TraceInput(
    Scenario Scenario,
    string Image1, string Image2, string Clinical1, string Clinical2,
    bool FirstDiscordant, bool SecondDiscordant,
    IReadOnlyDictionary<string, string> Options,
    string AnswerLetter);

/// <summary>A reference trace in the project's format with the guideline annotations it satisfies.</summary>
public sealed record Trace(string Reasoning, GuidelineAnnotations Guideline);

/// <summary>
/// Writes the reference reasoning of an item from one of the four guideline perspectives. Every trace names the four
/// key findings verbatim, walks the perspective's guideline steps in order, each step starting with its label
/// ("Imaging findings: …"), and ends with the option letter in &lt;answer&gt;; Bayesian traces state the pre-test
/// probability and its updates. The annotations list exactly those findings and step labels.
/// </summary>
public static class ReasoningWriter
{
    public static readonly IReadOnlyDictionary<string, IReadOnlyList<string>> Steps = new Dictionary<string, IReadOnlyList<string>>
    {
        [Vocabulary.Differential] = ["Imaging findings", "Clinical context", "Differential diagnosis", "Exclusion", "Conclusion"],
        [Vocabulary.Intuitive] = ["Pattern recognition", "Context check", "Conclusion"],
        [Vocabulary.Analytical] = ["Imaging findings", "Clinical context", "First pairing", "Second pairing", "Decision table", "Conclusion"],
        [Vocabulary.Bayesian] = ["Pre-test probability", "First update", "Second update", "Post-test probability", "Conclusion"],
    };

    static string P(double p) => p.ToString("0.00", CultureInfo.InvariantCulture);

    public static Trace Write(string perspective, TraceInput t)
    {
        var sc = t.Scenario;
        string dx = t.Options[t.AnswerLetter];
        string w1 = Pairing.Word(t.FirstDiscordant), w2 = Pairing.Word(t.SecondDiscordant);
        string p1 = sc.First.Name, p2 = sc.Second.Name;
        // The two diagnoses left after the first pairing, and the one the second pairing rules out.
        string keep0 = sc.Diagnoses[Scenario.DiagnosisIndex(t.FirstDiscordant, false)];
        string keep1 = sc.Diagnoses[Scenario.DiagnosisIndex(t.FirstDiscordant, true)];
        string other = keep0 == dx ? keep1 : keep0;
        string conclusion = $"Conclusion: {dx}, option {t.AnswerLetter}.";
        double pretest = 1.0 / sc.Diagnoses.Length;

        string think = perspective switch
        {
            Vocabulary.Differential =>
                $"Imaging findings: the {sc.ImageNoun} shows {t.Image1} and {t.Image2}. " +
                $"Clinical context: {t.Clinical1}; {t.Clinical2}. " +
                $"Differential diagnosis: {string.Join(", ", t.Options.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => $"{kv.Key}. {kv.Value}"))}. " +
                $"Exclusion: the {p1} is {w1} ({t.Image1} with {t.Clinical1}), which rules out all but {keep0} and {keep1}" +
                $"{Distractors(t)}; the {p2} is {w2} ({t.Image2} with {t.Clinical2}), which rules out {other}. {conclusion}",
            Vocabulary.Intuitive =>
                $"Pattern recognition: {t.Image1} and {t.Image2} on the {sc.ImageNoun}, in a patient who is {t.Clinical1} and {t.Clinical2}, " +
                $"is the recognisable picture of {dx}. " +
                $"Context check: the {p1} is {w1} and the {p2} is {w2}, the {dx} cell of the {sc.GuidelineName}. {conclusion}",
            Vocabulary.Analytical =>
                $"Imaging findings: {t.Image1}; {t.Image2}. Clinical context: {t.Clinical1}; {t.Clinical2}. " +
                $"First pairing: {t.Image1} with {t.Clinical1} makes the {p1} {w1}. " +
                $"Second pairing: {t.Image2} with {t.Clinical2} makes the {p2} {w2}. " +
                $"Decision table: in the {sc.GuidelineName}, a {w1} {p1} with a {w2} {p2} means {dx}. {conclusion}",
            Vocabulary.Bayesian =>
                $"Pre-test probability: {P(pretest)} for {dx}, as for each of the {sc.Diagnoses.Length} candidate diagnoses, since the history alone favours none. " +
                $"First update: {t.Image1} with {t.Clinical1} makes the {p1} {w1}, which keeps {keep0} and {keep1} at {P(2 * pretest)} each. " +
                $"Second update: {t.Image2} with {t.Clinical2} makes the {p2} {w2}, which favours {dx} over {other}. " +
                $"Post-test probability: about 0.95 for {dx} (from {P(pretest)} through {P(2 * pretest)}). {conclusion}",
            _ => throw new ArgumentException($"unknown perspective '{perspective}'"),
        };
        var guideline = new GuidelineAnnotations(
            [t.Image1, t.Image2, t.Clinical1, t.Clinical2],
            Steps[perspective],
            perspective == Vocabulary.Bayesian ? pretest : null);
        return new Trace(ReasoningFormat.Compose(think, t.AnswerLetter), guideline);
    }

    /// <summary>Names distractor options (never supported by the guideline table) when the item has one.</summary>
    static string Distractors(TraceInput t)
    {
        var distractors = t.Options.Values.Where(v => !t.Scenario.Diagnoses.Contains(v)).ToList();
        return distractors.Count == 0 ? "" : $" ({string.Join(", ", distractors)} is not in the {t.Scenario.GuidelineName} table)";
    }
}
