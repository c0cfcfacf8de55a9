using MMedExpert.Algebra.Rewards;
using MMedExpert.Core.Training;
using MMedExpert.Data.Benchmarks;
using MMedExpert.Data.Eval;
using MMedExpert.Data.MedSynth;

namespace MMedExpert.Data.Schema;

/// <summary>Which reasoning trace a model is fine-tuned to write.</summary>
public enum TraceStyle
{
    /// <summary>The item's own step-by-step trace (the paper's setting).</summary>
    Full,
    /// <summary>
    /// The key findings (without their measured details) and the diagnosis, still as
    /// &lt;think&gt;…&lt;/think&gt;&lt;answer&gt;…&lt;/answer&gt;: a few dozen tokens instead of a few hundred, for the
    /// CPU-sized embedded pipeline. The answer names the option's text, not its letter: mapping a name to its shuffled
    /// letter is a copying skill a 5M-parameter model does not acquire in minutes (evaluation and rewards accept either).
    /// </summary>
    Compact,
}

/// <summary>
/// The one mapping from an MMedExpert item to what the trainers and the rewards consume: chat samples (the same user
/// text as evaluation, so a model is trained on the prompts it is tested with) and the reward annotations.
/// </summary>
public static class MedItemSamples
{
    /// <summary>The prompt: the item's images, then its question, options and the answer-format instruction.</summary>
    public static VisionChatSample Prompt(MedItem item, string baseDir)
    {
        var eval = MedSynthBench.ToEvalItem(item, baseDir);
        return new VisionChatSample(eval.ImagePaths, EvalPrompt.UserText(eval));
    }

    /// <summary>The prompt with the reference answer, for supervised fine-tuning.</summary>
    public static VisionChatSample Training(MedItem item, string baseDir, TraceStyle style = TraceStyle.Full) =>
        Prompt(item, baseDir) with { AssistantText = style == TraceStyle.Full ? item.Reasoning : CompactTrace(item) };

    public static string CompactTrace(MedItem item)
    {
        string findings = $"{CompactSteps[0]}: {string.Join("; ", CompactFindings(item))}. ";
        string pairings = MedSynthPairings(item) is var (first, second)
            ? $"{PairingsStep}: {Pairing.Word(first)}, {Pairing.Word(second)}. " : "";
        return $"<think>{findings}{pairings}{CompactSteps[1]}: {item.AnswerText}.</think><answer>{item.AnswerText}</answer>";
    }

    /// <summary>The step labels of a compact trace, in order (plus <see cref="PairingsStep"/> between them for MedSynth items).</summary>
    public static readonly IReadOnlyList<string> CompactSteps = new[] { "Key findings", "Conclusion" };
    public const string PairingsStep = "Pairings";

    /// <summary>
    /// For a MedSynth item, whether each of its guideline's two pairings is discordant, read off the decision table from
    /// the correct diagnosis; null for items of other data. Naming them splits the guideline into an XOR per pairing and a
    /// 2-bit lookup, which the embedded run's base learns far sooner than the whole 16-cell table (diagnosis consistent
    /// with its own intermediate words after 150 steps: 43.5 % vs 7 %; paper/learnability/README.md).
    /// </summary>
    public static (bool First, bool Second)? MedSynthPairings(MedItem item)
    {
        var scenario = Scenario.All.FirstOrDefault(s => s.Specialty == item.Specialty);
        int index = scenario is null ? -1 : Array.IndexOf(scenario.Diagnoses, item.AnswerText);
        return index < 0 ? null : Scenario.Pairings(index);
    }

    /// <summary>
    /// The key findings without a trailing detail in parentheses ("febrile (38.9 °C)" → "febrile"): the finding is what
    /// the guideline reads; the measured detail is copying work that a compact trace leaves out.
    /// </summary>
    public static IReadOnlyList<string> CompactFindings(MedItem item) =>
        item.Guideline.KeyFindings.Select(f => f.EndsWith(')') && f.LastIndexOf(" (", StringComparison.Ordinal) is > 0 and var at ? f[..at] : f).ToList();

    /// <summary>
    /// What the guideline reward checks read: each guideline step label is its own keyword group. For compact traces the
    /// findings and steps are the compact ones, so a model trained on them can earn every check it was taught.
    /// </summary>
    public static Annotations Annotations(MedItem item, TraceStyle style = TraceStyle.Full) =>
        Algebra.Rewards.Annotations.Create(item.Answer, item.Options.ToDictionary(kv => kv.Key, kv => kv.Value),
            style == TraceStyle.Full ? item.Guideline.KeyFindings : CompactFindings(item),
            (style == TraceStyle.Full ? item.Guideline.GuidelineSteps : CompactSteps).Select(s => (IEnumerable<string>)new[] { s }),
            item.Guideline.PretestProbability, item.Specialty, "diagnosis", item.Perspective);
}
