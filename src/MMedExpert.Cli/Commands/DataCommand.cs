using System.CommandLine;
using MMedExpert.Data;
using MMedExpert.Data.Benchmarks;
using MMedExpert.Data.Eval;
using MMedExpert.Data.MedSynth;
using MMedExpert.Data.Schema;

namespace MMedExpert.Cli.Commands;

/// <summary>`mmx data synth` (generate MedSynth) and `mmx data check` (validate a JSONL file or a benchmark file).</summary>
public static class DataCommand
{
    public static Command Create()
    {
        var cmd = new Command("data", "The MMedExpert data: generate the MedSynth set, validate data files");
        cmd.Subcommands.Add(Synth());
        cmd.Subcommands.Add(Check());
        return cmd;
    }

    static Command Synth()
    {
        var defaults = new MedSynthOptions();
        var outDir = new Option<string>("--out") { Description = "Output folder (replaced atomically)", Required = true };
        var n = new Option<int>("--n") { Description = "Number of items", DefaultValueFactory = _ => defaults.N };
        var seed = new Option<ulong>("--seed") { Description = "Random seed", DefaultValueFactory = _ => defaults.Seed };
        var difficulty = new Option<double>("--difficulty") { Description = "0 (easy) … 1 (hard): contrast, margins to thresholds, distractors", DefaultValueFactory = _ => defaults.Difficulty };
        var size = new Option<int>("--image-size") { Description = "Image side in pixels", DefaultValueFactory = _ => defaults.ImageSize };
        var imagingReport = new Option<bool>("--imaging-report") { Description = "State the two image findings in the question text (a one-line imaging report)" };
        var json = new Option<bool>("--json") { Description = "Print the report as JSON" };
        var cmd = new Command("synth", "Generate the MedSynth data set: images/, sft|rl|val|test.jsonl, report.json");
        foreach (var o in new Option[] { outDir, n, seed, difficulty, size, imagingReport, json }) cmd.Options.Add(o);
        cmd.SetAction(parse =>
        {
            var options = defaults with
            {
                N = parse.GetValue(n), Seed = parse.GetValue(seed), Difficulty = parse.GetValue(difficulty), ImageSize = parse.GetValue(size),
                ImagingReport = parse.GetValue(imagingReport),
            };
            var (report, seconds) = MMedExpert.Data.Eval.ConsoleProgress.Run("medsynth", options.N, 0, advance =>
                MedSynthGenerator.Write(parse.GetValue(outDir)!, options, _ => advance(1)));
            if (parse.GetValue(json)) Console.Write(report.ToJson());
            else Console.WriteLine(report.Summary());
            Console.Error.WriteLine($"wrote {parse.GetValue(outDir)} in {seconds:F1} s ({seconds / options.N * 1000:F1} s per 1000 items)");
            return 0;
        });
        return cmd;
    }

    static Command Check()
    {
        var path = new Argument<string>("path") { Description = "A JSONL file (or a folder of them) in the MMedExpert schema, or a benchmark file with --format" };
        var skipBad = new Option<bool>("--skip-bad") { Description = "Skip bad lines and count them instead of stopping at the first" };
        var format = new Option<string>("--format") { Description = "mmedexpert (default), medxpertqa-mm or omnimedvqa", DefaultValueFactory = _ => "mmedexpert" };
        var imageRoot = new Option<string?>("--image-root") { Description = "Benchmarks: folder the image paths are relative to" };
        var cmd = new Command("check", "Validate data files and print a summary");
        cmd.Arguments.Add(path);
        cmd.Options.Add(skipBad);
        cmd.Options.Add(format);
        cmd.Options.Add(imageRoot);
        cmd.SetAction(parse =>
        {
            string p = parse.GetValue(path)!, f = parse.GetValue(format)!;
            if (f != "mmedexpert")
            {
                var items = BenchmarkLoader.Load(BenchmarkLoader.Parse(f), p, parse.GetValue(imageRoot));
                Console.WriteLine($"{p}: {items.Count} {f} items valid");
                return 0;
            }
            var files = Directory.Exists(p) ? Directory.GetFiles(p, "*.jsonl").Order(StringComparer.Ordinal).ToArray() : [p];
            if (files.Length == 0) throw new DataException($"{p}: no .jsonl files");
            int skipped = 0;
            foreach (var file in files)
            {
                var result = MedItemLoader.Load(file, parse.GetValue(skipBad));
                Console.WriteLine(result.Summary);
                foreach (var problem in result.Summary.FirstProblems) Console.WriteLine($"  {problem}");
                skipped += result.Summary.Skipped;
            }
            if (skipped > 0) Console.WriteLine($"{skipped} bad lines skipped");
            return 0;
        });
        return cmd;
    }
}
