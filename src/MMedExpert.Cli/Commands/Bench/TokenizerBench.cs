using System.CommandLine;
using System.Diagnostics;
using System.Text;
using System.Text.Json;
using MMedExpert.Core.Tokenization;

namespace MMedExpert.Cli.Commands.Bench;

/// <summary>
/// `mmx bench tokenizer --tokenizer PATH --corpus FILE [--json]`: encoding throughput in MB/s (10^6 UTF-8 bytes of
/// input per second) on one thread and through the batch API on all cores, plus, in the same run, Microsoft.ML.Tokenizers'
/// BpeTokenizer on the same texts (its speed and how many texts it encodes to exactly our ids). Corpus: JSON lines with
/// a "text" field. Each figure is the best of --repeats passes after one warm-up pass (JIT, word caches); the passes of
/// the three figures are interleaved. cpu_parallel_ceiling (all-core speedup of a pure arithmetic loop, measured in the
/// same run) tells whether a low batch ratio is the tokenizer's or the machine's.
/// </summary>
public static class TokenizerBench
{
    public static Command Create()
    {
        var tokenizer = new Option<string>("--tokenizer") { Description = "tokenizer.json", Required = true };
        var corpus = new Option<string>("--corpus") { Description = "JSON lines with a \"text\" field", Required = true };
        var repeats = new Option<int>("--repeats") { Description = "Timed passes per figure (best is reported)", DefaultValueFactory = _ => 5 };
        var baseline = new Option<bool>("--no-baseline") { Description = "Skip the Microsoft.ML.Tokenizers baseline" };
        var json = new Option<bool>("--json") { Description = "Print one JSON object" };
        var cmd = new Command("tokenizer", "Tokenizer encode MB/s: one thread, batch on all cores, and Microsoft.ML.Tokenizers in the same run");
        foreach (var o in new Option[] { tokenizer, corpus, repeats, baseline, json }) cmd.Options.Add(o);
        cmd.SetAction(parse =>
        {
            string corpusPath = parse.GetValue(corpus)!;
            var texts = ReadCorpus(corpusPath);
            long bytes = texts.Sum(t => (long)Encoding.UTF8.GetByteCount(t));
            int n = Math.Max(1, parse.GetValue(repeats));

            var loadClock = Stopwatch.StartNew();
            var tok = Qwen2Tokenizer.FromFile(parse.GetValue(tokenizer)!);
            double loadSeconds = loadClock.Elapsed.TotalSeconds;

            long tokens = 0;
            foreach (var t in texts) tokens += tok.Encode(t).Length; // warm-up (JIT, this thread's word cache)
            var ours = tok.EncodeBatch(texts);                     // warm-up of the pool threads

            Microsoft.ML.Tokenizers.Tokenizer? ml = null;
            int? mlnetSame = null;
            if (!parse.GetValue(baseline))
            {
                ml = MlNetBpeBaseline.Create(tok.Definition);
                mlnetSame = 0;
                for (int i = 0; i < texts.Count; i++)
                    if (ml.EncodeToIds(texts[i]).SequenceEqual(ours[i])) mlnetSame++; // also its warm-up
            }

            // Passes are interleaved so a busy machine slows all figures alike; each figure is the best of its passes.
            double single = double.MaxValue, batch = double.MaxValue, mlnet = double.MaxValue;
            for (int r = 0; r < n; r++)
            {
                // Results are kept, as the batch API keeps them (retaining 7M ids costs GC time of its own).
                single = Math.Min(single, Time(() => { var kept = new int[texts.Count][]; for (int i = 0; i < kept.Length; i++) kept[i] = tok.Encode(texts[i]); }));
                batch = Math.Min(batch, Time(() => tok.EncodeBatch(texts)));
                if (ml != null) mlnet = Math.Min(mlnet, Time(() => { var kept = new IReadOnlyList<int>[texts.Count]; for (int i = 0; i < kept.Length; i++) kept[i] = ml.EncodeToIds(texts[i]); }));
            }
            double? mlnetSingle = ml != null ? mlnet : null;
            double ceiling = ParallelCeiling();

            double Mbs(double seconds) => Math.Round(bytes / seconds / 1e6, 2);
            var result = new
            {
                corpus = corpusPath,
                texts = texts.Count,
                corpus_mb = Math.Round(bytes / 1e6, 2),
                tokens,
                load_seconds = Math.Round(loadSeconds, 3),
                single_thread_mb_per_s = Mbs(single),
                batch_mb_per_s = Mbs(batch),
                batch_threads = Environment.ProcessorCount,
                batch_over_single = Math.Round(single / batch, 2),
                cpu_parallel_ceiling = Math.Round(ceiling, 2),
                goal_single_thread_mb_per_s = 20.0,
                mlnet_single_thread_mb_per_s = mlnetSingle is { } s ? Mbs(s) : (double?)null,
                ours_over_mlnet = mlnetSingle is { } s2 ? Math.Round(s2 / single, 2) : (double?)null,
                mlnet_texts_with_identical_ids = mlnetSame,
                repeats = n,
            };
            if (parse.GetValue(json)) CommandKit.WriteJson(result);
            else
            {
                Console.WriteLine($"corpus            {result.corpus_mb} MB, {result.texts} texts, {tokens} tokens");
                Console.WriteLine($"one thread        {result.single_thread_mb_per_s} MB/s (goal 20)");
                Console.WriteLine($"batch, {result.batch_threads} threads  {result.batch_mb_per_s} MB/s ({result.batch_over_single}x; a pure CPU loop gets {result.cpu_parallel_ceiling}x here now)");
                if (mlnetSingle != null)
                    Console.WriteLine($"ML.Tokenizers     {result.mlnet_single_thread_mb_per_s} MB/s one thread; identical ids on {mlnetSame}/{texts.Count} texts");
            }
            return 0;
        });
        return cmd;
    }

    /// <summary>How much faster the machine runs the same arithmetic loop on all cores than on one, right now: the
    /// ceiling the batch figure should be judged against on a shared or throttled machine.</summary>
    static double ParallelCeiling()
    {
        static ulong Spin()
        {
            ulong x = 0;
            for (ulong i = 0; i < 100_000_000; i++) x = x * 6364136223846793005UL + i;
            return x;
        }
        int p = Environment.ProcessorCount;
        double best = 0;
        for (int r = 0; r < 3; r++)
        {
            double one = Time(() => Spin());
            double all = Time(() => Parallel.For(0, p, _ => Spin()));
            best = Math.Max(best, p * one / all);
        }
        return best;
    }

    static double Time(Action pass)
    {
        var sw = Stopwatch.StartNew();
        pass();
        return sw.Elapsed.TotalSeconds;
    }

    static List<string> ReadCorpus(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: corpus not found", path);
        var texts = new List<string>();
        int lineNo = 0;
        foreach (var line in File.ReadLines(path))
        {
            lineNo++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            try
            {
                using var doc = JsonDocument.Parse(line);
                if (!doc.RootElement.TryGetProperty("text", out var t) || t.ValueKind != JsonValueKind.String)
                    throw new TokenizerException($"{path}: line {lineNo}: field \"text\" missing or not a string");
                texts.Add(t.GetString()!);
            }
            catch (JsonException e) { throw new TokenizerException($"{path}: line {lineNo}: not valid JSON: {e.Message}", e); }
        }
        if (texts.Count == 0) throw new TokenizerException($"{path}: no texts");
        return texts;
    }
}
