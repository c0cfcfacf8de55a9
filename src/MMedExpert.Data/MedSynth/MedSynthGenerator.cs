using System.Diagnostics;
using MMedExpert.Core.IO;
using MMedExpert.Data.Schema;

namespace MMedExpert.Data.MedSynth;

/// <summary>
/// MedSynth: the embedded default data set. Procedural, seeded, deterministic: the same options give byte-identical
/// files, whatever the number of threads (every item draws from its own random streams).
///
/// Design: items come in balanced blocks of 64 = 4 specialties × 4 diagnoses × 4 combinations of the two clinical
/// findings, shuffled within the block. The image findings are then fixed by the XOR pairings of the synthetic
/// guideline, so within a specialty each clinical combination meets each diagnosis equally often (the text alone says
/// nothing about the answer) and so does each image combination (the image alone says nothing either), while text and
/// image together determine it. Perspectives cycle through the block, splits are index ranges (sft, rl, val, test).
/// </summary>
public static class MedSynthGenerator
{
    const int BlockSize = 64, ChunkSize = 1024;
    /// <summary>Starts the imaging-report sentence of <see cref="MedSynthOptions.ImagingReport"/>.</summary>
    public const string ReportPrefix = "Imaging report: ";
    const ulong BlockStream = 1, TextStream = 2, ImageStream = 3, OptionStream = 4;

    /// <summary>The closing question of every item (the perception curriculum replaces it to ask about a finding).</summary>
    public static readonly IReadOnlyList<string> Stems =
    [
        "What is the most likely diagnosis?",
        "Which diagnosis best explains the clinical and imaging findings?",
        "Based on the image and the clinical findings, which is the most likely diagnosis?",
        "Taking the image and the history together, what is the diagnosis?",
    ];

    /// <summary>The split of item <paramref name="index"/> of <paramref name="n"/>: contiguous index ranges.</summary>
    public static string SplitOf(int index, int n, MedSynthOptions o)
    {
        int sft = (int)Math.Round(o.SftFraction * n), rl = (int)Math.Round(o.RlFraction * n), val = (int)Math.Round(o.ValFraction * n);
        return index < sft ? Vocabulary.Sft : index < sft + rl ? Vocabulary.Rl : index < sft + rl + val ? Vocabulary.Val : Vocabulary.Test;
    }

    /// <summary>The balanced assignment (specialty, diagnosis, clinical1, clinical2) of every item.</summary>
    static (int Specialty, int Diagnosis, bool C1, bool C2)[] Assign(int n, ulong seed)
    {
        var all = new (int, int, bool, bool)[n];
        for (int start = 0, block = 0; start < n; start += BlockSize, block++)
        {
            var cells = new List<(int, int, bool, bool)>(BlockSize);
            for (int s = 0; s < 4; s++) for (int dx = 0; dx < 4; dx++) for (int c = 0; c < 4; c++) cells.Add((s, dx, c >= 2, c % 2 == 1));
            SeededRandom.For(seed, BlockStream, (ulong)block).Shuffle(cells);
            for (int k = 0; k < BlockSize && start + k < n; k++) all[start + k] = cells[k];
        }
        return all;
    }

    /// <summary>Generates all items in memory (PNG bytes included), in index order; items are computed in parallel.</summary>
    public static GeneratedItem[] Generate(MedSynthOptions o, Action<int>? itemDone = null)
    {
        o.Validate();
        var plan = Assign(o.N, o.Seed);
        var items = new GeneratedItem[o.N];
        Parallel.For(0, o.N, i =>
        {
            items[i] = One(i, plan[i], IdWidth(o.N), o);
            itemDone?.Invoke(i);
        });
        return items;
    }

    static int IdWidth(int n) => Math.Max(5, (n - 1).ToString().Length);

    static GeneratedItem One(int i, (int Specialty, int Diagnosis, bool C1, bool C2) cell, int width, MedSynthOptions o)
    {
        var sc = Scenario.All[cell.Specialty];
        var (disc1, disc2) = Scenario.Pairings(cell.Diagnosis);
        bool image1 = cell.C1 ^ disc1, image2 = cell.C2 ^ disc2;   // Discordant(image, clinical) = image ≠ clinical
        string id = $"ms-{i.ToString().PadLeft(width, '0')}";

        var text = Vignette.Write(sc, cell.C1, cell.C2, o.Difficulty, SeededRandom.For(o.Seed, TextStream, (ulong)i));
        var scene = Scenes.Draw(sc, image1, image2, o.Difficulty, o.ImageSize, SeededRandom.For(o.Seed, ImageStream, (ulong)i), text.Eye);

        var orng = SeededRandom.For(o.Seed, OptionStream, (ulong)i);
        var labels = sc.Diagnoses.ToList();
        if (orng.Chance(0.5)) labels.Add(orng.Pick(sc.Distractors));
        orng.Shuffle(labels);
        var options = new Dictionary<string, string>(StringComparer.Ordinal);
        for (int k = 0; k < labels.Count; k++) options[Vocabulary.OptionLetters[k]] = labels[k];
        string answer = Vocabulary.OptionLetters[labels.IndexOf(sc.Diagnoses[cell.Diagnosis])];
        string report = o.ImagingReport ? $" {ReportPrefix}{sc.First.Image.Describe(image1)}; {sc.Second.Image.Describe(image2)}." : "";
        string question = $"{text.Text}{report} {orng.Pick(Stems)}";

        string perspective = Vocabulary.Perspectives[i % BlockSize % 4];
        var trace = ReasoningWriter.Write(perspective, new TraceInput(sc, scene.Image1Phrase, scene.Image2Phrase,
            text.Clinical1Phrase, text.Clinical2Phrase, disc1, disc2, options, answer));
        var item = new MedItem(id, sc.Specialty, [$"images/{id}.png"], question, options, answer, trace.Reasoning, perspective,
            trace.Guideline, SplitOf(i, o.N, o));
        return new GeneratedItem(item, new LatentCase(sc.Specialty, cell.Diagnosis, image1, cell.C1, image2, cell.C2),
            scene.Image1, scene.Image2, scene.Canvas.ToPng());
    }

    /// <summary>
    /// Generates and writes a data set folder atomically: images/&lt;id&gt;.png, one JSONL file per split
    /// (sft.jsonl, rl.jsonl, val.jsonl, test.jsonl; image paths relative to the folder) and report.json.
    /// Returns the report and the wall time in seconds (kept out of report.json so that the files stay reproducible).
    /// </summary>
    public static (SynthesisReport Report, double Seconds) Write(string outDir, MedSynthOptions o, Action<int>? itemDone = null)
    {
        o.Validate();
        var clock = Stopwatch.StartNew();
        SynthesisReport? report = null;
        AtomicFile.WriteDirectory(outDir, tmp =>
        {
            Directory.CreateDirectory(Path.Combine(tmp, "images"));
            var plan = Assign(o.N, o.Seed);
            var items = new GeneratedItem[o.N];
            // Chunks bound the memory: each chunk's PNG bytes are written and dropped before the next.
            for (int start = 0; start < o.N; start += ChunkSize)
            {
                int count = Math.Min(ChunkSize, o.N - start);
                Parallel.For(start, start + count, i =>
                {
                    var g = One(i, plan[i], IdWidth(o.N), o);
                    File.WriteAllBytes(Path.Combine(tmp, g.Item.Images[0]), g.Png);
                    items[i] = g with { Png = [] };
                    itemDone?.Invoke(i);
                });
            }
            foreach (var split in Vocabulary.Splits)
                File.WriteAllText(Path.Combine(tmp, $"{split}.jsonl"), MedItemJson.ToJsonLines(items.Select(g => g.Item).Where(it => it.Split == split)));
            report = SynthesisReport.Compute(items, o);
            File.WriteAllText(Path.Combine(tmp, "report.json"), report.ToJson());
        });
        return (report!, clock.Elapsed.TotalSeconds);
    }
}
