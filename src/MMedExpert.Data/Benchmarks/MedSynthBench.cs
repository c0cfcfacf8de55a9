using MMedExpert.Data.MedSynth;
using MMedExpert.Data.Schema;

namespace MMedExpert.Data.Benchmarks;

/// <summary>MMedExpert-schema items (MedSynth or any file in the schema) as evaluation items.</summary>
public static class MedSynthBench
{
    public static EvalItem ToEvalItem(MedItem item, string baseDir) => new(
        item.Id, item.Question, item.Options, item.Answer,
        item.Images.Select(p => Path.GetFullPath(Path.Combine(baseDir, p))).ToList(),
        "medsynth",
        new Dictionary<string, string>
        {
            [GroupKeys.Specialty] = item.Specialty,
            [GroupKeys.Modality] = Scenario.All.FirstOrDefault(s => s.Specialty == item.Specialty)?.Modality ?? "unknown",
            [GroupKeys.QuestionType] = "diagnosis",
        });

    /// <summary>Loads one JSONL file (every field validated, images checked).</summary>
    public static IReadOnlyList<EvalItem> Load(string path)
    {
        var result = MedItemLoader.Load(path);
        string baseDir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        return result.Items.Select(i => ToEvalItem(i, baseDir)).ToList();
    }
}
