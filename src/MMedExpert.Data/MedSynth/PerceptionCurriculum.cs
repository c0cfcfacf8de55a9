using MMedExpert.Core.Training;
using MMedExpert.Data.Schema;

namespace MMedExpert.Data.MedSynth;

/// <summary>
/// What the embedded base is pretrained on (<c>mmx pretrain</c>): perception and the answer format, never the guideline
/// or a diagnosis, which are what DSA and GBA add. Two samples per MedSynth item:
/// <list type="bullet">
/// <item><b>findings</b>: the item's own diagnosis prompt, answered with the first step of the compact trace only,
/// "&lt;think&gt;Key findings: i1; i2; c1; c2." (an <see cref="VisionChatSample.Open"/> sample: the turn's end is not trained,
/// so the model learns to read the findings without learning to stop, or to conclude, there);</item>
/// <item><b>finding question</b>: the same vignette and image asking which of five findings the patient has (the one true
/// finding among the opposites of all four), answered in the full format with the option's letter
/// "&lt;think&gt;Key findings: ….&lt;/think&gt;&lt;answer&gt;C&lt;/answer&gt;".</item>
/// </list>
/// The diagnoses appear only as the options of the first prompt, never as a target, so the base stays at chance on them.
/// The letter (not the finding's text) is what makes that chance: asked for a diagnosis, the base answers some option's
/// letter; answering with the text, it named a finding, which is no option at all (0 % at step 1000 of a first run).
/// DSA then teaches the compact trace's own answer, the diagnosis's text.
/// </summary>
public static class PerceptionCurriculum
{
    public const string FindingQuestion = "Which of the following findings does this patient have?";
    const ulong QuestionStream = 11;

    /// <summary>"&lt;think&gt;Key findings: a; b; c; d." — the first step of <see cref="MedItemSamples.CompactTrace"/>.</summary>
    public static string FindingsStep(MedItem item) =>
        $"<think>{MedItemSamples.CompactSteps[0]}: {string.Join("; ", MedItemSamples.CompactFindings(item))}.";

    /// <summary>Both samples of item number <paramref name="index"/> (the index keys the option order of the question).</summary>
    public static IEnumerable<VisionChatSample> Samples(MedItem item, string baseDir, ulong seed, int index)
    {
        yield return MedItemSamples.Prompt(item, baseDir) with { AssistantText = FindingsStep(item), Open = true };
        var question = FindingQuestionItem(item, SeededRandom.For(seed, QuestionStream, (ulong)index));
        yield return MedItemSamples.Prompt(question, baseDir) with
        {
            AssistantText = $"{FindingsStep(item)}</think><answer>{question.Answer}</answer>",
        };
    }

    /// <summary>The item turned into a finding question: one of its four findings is the answer, the opposites of all four the distractors.</summary>
    public static MedItem FindingQuestionItem(MedItem item, SeededRandom rng)
    {
        var scenario = Scenario.For(item.Specialty);
        var findings = new[] { scenario.First.Image, scenario.Second.Image, scenario.First.Clinical, scenario.Second.Clinical };
        var stated = MedItemSamples.CompactFindings(item);
        if (stated.Count != 4) throw new DataException($"item {item.Id}: expected 4 key findings, found {stated.Count}");
        // The "absent" value has wordings besides WhenFalse ("never smoker" for "light or never smoker"): anything but
        // WhenTrue reads as absent, as in the guideline.
        var opposites = findings.Select((f, k) => stated[k] == f.WhenTrue ? f.WhenFalse : f.WhenTrue).ToList();
        string truth = stated[rng.Int(0, 3)];
        var labels = opposites.Append(truth).ToList();
        rng.Shuffle(labels);
        var options = new Dictionary<string, string>(StringComparer.Ordinal);
        for (int k = 0; k < labels.Count; k++) options[Vocabulary.OptionLetters[k]] = labels[k];
        return item with
        {
            Question = $"{Vignette(item)} {FindingQuestion}",
            Options = options,
            Answer = Vocabulary.OptionLetters[labels.IndexOf(truth)],
        };
    }

    /// <summary>The question without its closing diagnosis question.</summary>
    public static string Vignette(MedItem item)
    {
        foreach (var stem in MedSynthGenerator.Stems)
            if (item.Question.EndsWith(" " + stem, StringComparison.Ordinal)) return item.Question[..^(stem.Length + 1)];
        throw new DataException($"item {item.Id}: the question does not end with a MedSynth diagnosis question");
    }
}
