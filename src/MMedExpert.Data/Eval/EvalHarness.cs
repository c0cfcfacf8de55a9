using System.Diagnostics;
using System.Text;
using System.Text.Json;
using MMedExpert.Algebra.Metrics;
using MMedExpert.Core;
using MMedExpert.Core.IO;
using MMedExpert.Data.Benchmarks;

namespace MMedExpert.Data.Eval;

/// <summary>Knobs of an evaluation run besides the batch size.</summary>
public sealed record EvalOptions(
    BootstrapSpec? Bootstrap = null,
    ProgressMode Progress = ProgressMode.Auto,
    string? Label = null,
    double CheckpointSeconds = 5.0);

/// <summary>
/// The evaluation loop: batches of items → the caller's answer generator (e.g. the model's batched greedy decoding in
/// the chat format) → answer extraction → predictions.jsonl and results.json in <c>outDir</c>.
/// Resumable: items whose id is already in predictions.jsonl are not generated again (their stored outputs are
/// re-extracted, so a fixed extractor applies to them too). predictions.jsonl is rewritten atomically after a batch
/// when <see cref="EvalOptions.CheckpointSeconds"/> have passed since the last write (0: after every batch) and at the end.
/// </summary>
public static class EvalHarness
{
    public const string PredictionsFile = "predictions.jsonl";
    public const string ResultsFile = "results.json";

    public static EvalResults Run(
        IReadOnlyList<EvalItem> items,
        Func<IReadOnlyList<EvalItem>, IReadOnlyList<string>> answerBatch,
        string outDir,
        int batchSize = 8,
        EvalOptions? options = null)
    {
        options ??= new EvalOptions();
        var bootstrap = options.Bootstrap ?? Scoring.defaultBootstrap;
        if (items.Count == 0) throw new MmxException("evaluation: no items");
        if (batchSize < 1) throw new MmxException($"evaluation: batch size must be at least 1 (got {batchSize})");
        var byId = new Dictionary<string, EvalItem>(StringComparer.Ordinal);
        foreach (var it in items)
            if (!byId.TryAdd(it.Id, it)) throw new DataException($"evaluation: duplicate item id '{it.Id}'");

        Directory.CreateDirectory(outDir);
        string predPath = Path.Combine(outDir, PredictionsFile);
        var done = ReadExisting(predPath, byId);
        int resumed = done.Count;
        var todo = items.Where(i => !done.ContainsKey(i.Id)).ToList();

        var clock = Stopwatch.StartNew();
        double lastWrite = 0;
        ConsoleProgress.Run(options.Label ?? $"eval {items[0].Benchmark}", items.Count, resumed, advance =>
        {
            for (int start = 0; start < todo.Count; start += batchSize)
            {
                var batch = todo.GetRange(start, Math.Min(batchSize, todo.Count - start));
                var outputs = answerBatch(batch);
                if (outputs is null || outputs.Count != batch.Count)
                    throw new MmxException($"evaluation: the answer generator returned {outputs?.Count ?? 0} outputs for a batch of {batch.Count} items (first id '{batch[0].Id}')");
                for (int k = 0; k < batch.Count; k++) done[batch[k].Id] = Grade(batch[k], outputs[k] ?? "");
                advance(batch.Count);
                bool last = start + batchSize >= todo.Count;
                if (last || clock.Elapsed.TotalSeconds - lastWrite >= options.CheckpointSeconds)
                {
                    WritePredictions(predPath, items, done);
                    lastWrite = clock.Elapsed.TotalSeconds;
                }
            }
            return 0;
        }, options.Progress);
        if (todo.Count == 0) WritePredictions(predPath, items, done);

        var preds = items.Select(i => done[i.Id]).ToList();
        var results = Score(items[0].Benchmark, preds, resumed, bootstrap);
        AtomicFile.WriteAllText(Path.Combine(outDir, ResultsFile), results.ToJson());
        return results;
    }

    /// <summary>Extracts the answer of one output and grades it.</summary>
    public static Prediction Grade(EvalItem item, string output)
    {
        var x = AnswerExtractor.Extract(output, item.Options);
        return new Prediction(item.Id, item.Answer, x.Letter, x.Letter == item.Answer, x.StrictFormat, x.Method, output, item.Groups);
    }

    /// <summary>The metrics of a set of graded predictions (pure apart from the bootstrap's fixed seed).</summary>
    public static EvalResults Score(string benchmark, IReadOnlyList<Prediction> preds, int resumed, BootstrapSpec bootstrap)
    {
        var correct = preds.Select(p => p.Correct).ToArray();
        var byGroup = new SortedDictionary<string, GroupScore[]>(StringComparer.Ordinal);
        foreach (var field in preds.SelectMany(p => p.Groups.Keys).Distinct())
        {
            var members = preds.Where(p => p.Groups.ContainsKey(field)).ToList();
            byGroup[field] = Scoring.byGroup(bootstrap, members.Select(p => p.Groups[field]).ToArray(), members.Select(p => p.Correct).ToArray());
        }
        var methods = new Dictionary<string, int>();
        foreach (var m in Enum.GetValues<ExtractionMethod>()) methods[Prediction.MethodName(m)] = preds.Count(p => p.Method == m);
        return new EvalResults(benchmark, Scoring.score(bootstrap, correct),
            Scoring.rate(preds.Select(p => !p.StrictFormat).ToArray()),
            Scoring.rate(preds.Select(p => p.Predicted is null).ToArray()),
            byGroup, methods, resumed, bootstrap);
    }

    static void WritePredictions(string path, IReadOnlyList<EvalItem> items, Dictionary<string, Prediction> done)
    {
        var sb = new StringBuilder();
        foreach (var it in items)
            if (done.TryGetValue(it.Id, out var p)) sb.Append(p.ToJsonLine()).Append('\n');
        AtomicFile.WriteAllText(path, sb.ToString());
    }

    /// <summary>Reads earlier predictions for resuming; each must belong to an item of this run with the same gold answer.</summary>
    static Dictionary<string, Prediction> ReadExisting(string path, Dictionary<string, EvalItem> byId)
    {
        var done = new Dictionary<string, Prediction>(StringComparer.Ordinal);
        if (!File.Exists(path)) return done;
        int lineNo = 0;
        foreach (var line in File.ReadLines(path))
        {
            lineNo++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            string id, answer, output;
            try
            {
                using var doc = JsonDocument.Parse(line);
                var r = doc.RootElement;
                id = r.GetProperty("id").GetString() ?? throw new DataException($"{path}:{lineNo}: field 'id': missing", "id");
                answer = r.GetProperty("answer").GetString() ?? throw new DataException($"{path}:{lineNo}: field 'answer': missing", "answer");
                output = r.GetProperty("output").GetString() ?? throw new DataException($"{path}:{lineNo}: field 'output': missing", "output");
            }
            catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
            {
                throw new DataException($"{path}:{lineNo}: not a prediction record (needs string fields id, answer, output): {e.Message}");
            }
            if (!byId.TryGetValue(id, out var item))
                throw new DataException($"{path}:{lineNo}: prediction for id '{id}', which is not in the evaluated data (use a fresh --out for other data)", "id");
            if (item.Answer != answer)
                throw new DataException($"{path}:{lineNo}: item '{id}' has gold answer '{answer}' here but '{item.Answer}' in the data (use a fresh --out for other data)", "answer");
            done[id] = Grade(item, output);
        }
        return done;
    }
}
