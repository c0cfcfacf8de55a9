using MMedExpert.Algebra.Rewards;
using MMedExpert.Core.Training;
using MMedExpert.Data.Benchmarks;
using MMedExpert.Data.Eval;

namespace MMedExpert.Data.Schema;

/// <summary>Which reasoning trace a model is fine-tuned to write.</summary>
public enum TraceStyle
{
    /// <summary>The item's own step-by-step trace (the paper's setting).</summary>
    Full,
    /// <summary>
    /// The key findings and the conclusion only, still as &lt;think&gt;…&lt;/think&gt;&lt;answer&gt;…&lt;/answer&gt;:
    /// a few dozen tokens instead of a few hundred, for the CPU-sized embedded pipeline.
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

    public static string CompactTrace(MedItem item) =>
        $"<think>Key findings: {string.Join("; ", item.Guideline.KeyFindings)}. Conclusion: {item.AnswerText}, option {item.Answer}.</think><answer>{item.Answer}</answer>";

    /// <summary>What the guideline reward checks read: each guideline step label is its own keyword group.</summary>
    public static Annotations Annotations(MedItem item) =>
        Algebra.Rewards.Annotations.Create(item.Answer, item.Options.ToDictionary(kv => kv.Key, kv => kv.Value),
            item.Guideline.KeyFindings, item.Guideline.GuidelineSteps.Select(s => (IEnumerable<string>)new[] { s }),
            item.Guideline.PretestProbability, item.Specialty, "diagnosis", item.Perspective);
}
