using System.CommandLine;
using MMedExpert.Core;
using MMedExpert.Core.Model.Generation;
using MMedExpert.Core.Model.Loading;
using MMedExpert.Core.Tokenization;
using MMedExpert.Core.Training;
using MMedExpert.Core.Vision;
using MMedExpert.Data.Benchmarks;
using MMedExpert.Data.Eval;
using MMedExpert.Serving.Client;

namespace MMedExpert.Cli.Commands;

/// <summary>
/// `mmx eval`: batched greedy answers of a model (optionally with a PEFT adapter) on a benchmark, scored with CIs; with
/// --endpoint the answers come from an OpenAI-compatible server (same prompts, same system prompt, greedy, same length
/// limit), requests of a batch in flight together.
/// </summary>
public static class EvalCommand
{
    public static Command Create()
    {
        var model = new Option<string?>("--base")
        {
            Description = "Model folder (HF layout with tokenizer.json); required without --endpoint, with it optional (its tokenizer names the vision tokens to ban)",
        };
        var endpoint = new Option<string?>("--endpoint") { Description = "Answer through this OpenAI-compatible server (mmx serve, vLLM, SGLang), e.g. http://127.0.0.1:8000" };
        var served = new Option<string?>("--model") { Description = "With --endpoint: the served model name (base or LoRA adapter) to ask" };
        var concurrency = new Option<int>("--concurrency") { Description = "With --endpoint: requests in flight at once", DefaultValueFactory = _ => 8 };
        var apiKey = new Option<string?>("--api-key") { Description = "With --endpoint: bearer token the server expects (vLLM --api-key)" };
        var adapter = new Option<string?>("--adapter") { Description = "PEFT adapter folder to apply" };
        var bench = new Option<string>("--bench") { Description = "medsynth | medxpertqa-mm | omnimedvqa", Required = true };
        var data = new Option<string>("--data") { Description = "Benchmark file or folder", Required = true };
        var imageRoot = new Option<string?>("--image-root") { Description = "Folder that relative image paths start from (real benchmarks)" };
        var output = new Option<string>("--out") { Description = "Output folder (results.json, predictions.jsonl); rerunning resumes", Required = true };
        var batch = new Option<int>("--batch-size") { Description = "Items per generation batch", DefaultValueFactory = _ => 16 };
        var maxNew = new Option<int>("--max-new-tokens") { Description = "Longest answer", DefaultValueFactory = _ => 256 };
        var limit = new Option<int>("--limit") { Description = "Evaluate only the first N items (0 = all)", DefaultValueFactory = _ => 0 };
        var cmd = new Command("eval", "Evaluate a model (+ adapter) on MedSynth, MedXpertQA-MM or OmniMedVQA: accuracy with 95% CIs, by group");
        foreach (var o in new Option[] { model, adapter, bench, data, imageRoot, output, batch, maxNew, limit, endpoint, served, concurrency, apiKey }) cmd.Options.Add(o);
        cmd.SetAction(parse =>
        {
            CommandKit.ConfigureTorch(parse);
            string? dir = parse.GetValue(model);
            var items = BenchmarkLoader.Load(BenchmarkLoader.Parse(parse.GetValue(bench)!), parse.GetValue(data)!, parse.GetValue(imageRoot));
            if (parse.GetValue(limit) is > 0 and var n && items.Count > n) items = items.Take(n).ToList();
            if (parse.GetValue(endpoint) is { } url)
            {
                var remote = ThroughEndpoint(url, parse.GetValue(served), dir, parse.GetValue(adapter), parse.GetValue(maxNew), parse.GetValue(concurrency),
                    parse.GetValue(apiKey), answer => EvalHarness.Run(items, answer, parse.GetValue(output)!, parse.GetValue(batch)));
                Console.WriteLine(remote.ToJson());
                return 0;
            }
            if (dir is null) throw new MmxException("mmx eval: --base is required (or --endpoint with --model)");
            var encoder = ModelFolder.ChatEncoder(dir);
            using var loaded = ModelLoader.Load(new ModelReference(dir, parse.GetValue(adapter)));
            var generator = new Qwen25VLGenerator(loaded.Model, ids => encoder.Tokenizer.Decode(ids, skipSpecial: true));
            var results = EvalHarness.Run(items, ModelAnswers.Greedy(generator, encoder, parse.GetValue(maxNew)), parse.GetValue(output)!,
                parse.GetValue(batch));
            Console.WriteLine(results.ToJson());
            return 0;
        });
        return cmd;
    }

    /// <summary>
    /// Evaluation through an endpoint: the in-process path's system prompt (the encoder's default) and, when a base
    /// folder is given, its tokenizer's vision placeholders banned as the local generator suppresses them.
    /// </summary>
    static EvalResults ThroughEndpoint(string url, string? servedModel, string? baseDir, string? adapter, int maxNewTokens, int concurrency,
        string? apiKey, Func<Func<IReadOnlyList<EvalItem>, IReadOnlyList<string>>, EvalResults> run)
    {
        if (string.IsNullOrWhiteSpace(servedModel)) throw new MmxException("mmx eval --endpoint: --model (the served model name) is required");
        if (adapter is not null)
            throw new MmxException("mmx eval --endpoint: --adapter applies to the local model only; serve the adapter under a name and pass that as --model");
        if (concurrency < 1) throw new MmxException($"--concurrency: must be at least 1 (got {concurrency})");
        IReadOnlyList<int> banned = Array.Empty<int>();
        string? system = Qwen25VLChat.DefaultSystemPrompt;
        if (baseDir is not null)
        {
            var encoder = new VisionChatEncoder(Qwen2Tokenizer.FromFile(Path.Combine(baseDir, "tokenizer.json")), new ImageProcessor());
            banned = encoder.SuppressTokenIds;
            system = encoder.DefaultSystemPrompt;
        }
        using var client = new OpenAiClient(url, new EndpointOptions { ApiKey = apiKey });
        return run(EndpointAnswers.Greedy(client, servedModel, system, banned, maxNewTokens, concurrency));
    }
}
