using MMedExpert.Data.MedSynth;
using MMedExpert.Data.Schema;

namespace MMedExpert.Cli.Pipeline.Stages;

/// <summary>Stage 1: the data. MedSynth is generated (seeded); a user's data folder is only validated.</summary>
public static class DataStage
{
    public static readonly string[] Splits = { "sft", "rl", "val", "test" };

    public static Stage Create(RunContext run) => new("data", "MedSynth: generate the embedded data set", s =>
    {
        var c = run.Config.Data;
        if (c.Path is null)
        {
            var (report, seconds) = MedSynthGenerator.Write(run.DataDir,
                new MedSynthOptions(N: c.Items, Seed: (ulong)run.Config.Seed, Difficulty: c.Difficulty, ImageSize: c.ImageSize, ImagingReport: c.ImagingReport));
            s.Log($"{c.Items} items in {seconds:F1} s");
            foreach (var line in report.Summary().Split('\n')) s.Log(line);
        }
        foreach (var split in Splits)
        {
            var loaded = MedItemLoader.Load(run.Split(split));
            s.Log($"{split}: {loaded.Items.Count} items");
        }
        // A user's data folder is an input, not an output of this run.
        return c.Path is null ? Splits.Select(run.Split).Append(Path.Combine(run.DataDir, "report.json")).ToList() : new List<string>();
    });
}
