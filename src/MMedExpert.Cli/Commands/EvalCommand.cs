using System.CommandLine;
using MMedExpert.Core.Model.Generation;
using MMedExpert.Core.Model.Loading;
using MMedExpert.Core.Tokenization;
using MMedExpert.Core.Training;
using MMedExpert.Core.Vision;
using MMedExpert.Data.Benchmarks;
using MMedExpert.Data.Eval;

namespace MMedExpert.Cli.Commands;

/// <summary>`mmx eval`: batched greedy answers of a model (optionally with a PEFT adapter) on a benchmark, scored with CIs.</summary>
public static class EvalCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--base") { Description = "Model folder (HF layout with tokenizer.json)", Required = true };
        var adapter = new Option<string?>("--adapter") { Description = "PEFT adapter folder to apply" };
        var bench = new Option<string>("--bench") { Description = "medsynth | medxpertqa-mm | omnimedvqa", Required = true };
        var data = new Option<string>("--data") { Description = "Benchmark file or folder", Required = true };
        var imageRoot = new Option<string?>("--image-root") { Description = "Folder that relative image paths start from (real benchmarks)" };
        var output = new Option<string>("--out") { Description = "Output folder (results.json, predictions.jsonl); rerunning resumes", Required = true };
        var batch = new Option<int>("--batch-size") { Description = "Items per generation batch", DefaultValueFactory = _ => 16 };
        var maxNew = new Option<int>("--max-new-tokens") { Description = "Longest answer", DefaultValueFactory = _ => 256 };
        var limit = new Option<int>("--limit") { Description = "Evaluate only the first N items (0 = all)", DefaultValueFactory = _ => 0 };
        var cmd = new Command("eval", "Evaluate a model (+ adapter) on MedSynth, MedXpertQA-MM or OmniMedVQA: accuracy with 95% CIs, by group");
        foreach (var o in new Option[] { model, adapter, bench, data, imageRoot, output, batch, maxNew, limit }) cmd.Options.Add(o);
        cmd.SetAction(parse =>
        {
            CommandKit.ConfigureTorch(parse);
            string dir = parse.GetValue(model)!;
            var items = BenchmarkLoader.Load(BenchmarkLoader.Parse(parse.GetValue(bench)!), parse.GetValue(data)!, parse.GetValue(imageRoot));
            if (parse.GetValue(limit) is > 0 and var n && items.Count > n) items = items.Take(n).ToList();
            string processorPath = Path.Combine(dir, "preprocessor_config.json");
            var encoder = new VisionChatEncoder(Qwen2Tokenizer.FromFile(Path.Combine(dir, "tokenizer.json")),
                File.Exists(processorPath) ? ImageProcessor.Load(processorPath) : new ImageProcessor());
            using var loaded = ModelLoader.Load(new ModelReference(dir, parse.GetValue(adapter)));
            var generator = new Qwen25VLGenerator(loaded.Model, ids => encoder.Tokenizer.Decode(ids, skipSpecial: true));
            var results = EvalHarness.Run(items, ModelAnswers.Greedy(generator, encoder, parse.GetValue(maxNew)), parse.GetValue(output)!,
                parse.GetValue(batch));
            Console.WriteLine(results.ToJson());
            return 0;
        });
        return cmd;
    }
}
