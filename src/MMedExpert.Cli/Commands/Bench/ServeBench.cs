using System.CommandLine;
using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using MMedExpert.Data.MedSynth;
using MMedExpert.Serving.Server;

namespace MMedExpert.Cli.Commands.Bench;

/// <summary>
/// `mmx bench serve`: the OpenAI-compatible server in-process on 127.0.0.1 (a free port), or any running endpoint
/// (`--endpoint URL --served-model NAME`: another `mmx serve` process, vLLM, SGLang), R chat completions (each with a
/// MedSynth-like 56×56 PNG as a data URL, max_tokens 32, greedy) sent (a) one after another by one client and (b) by N
/// concurrent clients; requests/s, p50/p99 latency and completion tokens/s for both, batching_speedup = concurrent
/// requests/s over sequential, and failures (must be 0: nothing dropped).
/// </summary>
public static class ServeBench
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "Checkpoint folder", DefaultValueFactory = _ => Path.Combine("models", "medsynth-base") };
        var clients = new Option<int>("--clients") { Description = "Concurrent clients in phase (b)", DefaultValueFactory = _ => 8 };
        var requests = new Option<int>("--requests") { Description = "Requests per phase", DefaultValueFactory = _ => 32 };
        var maxTokens = new Option<int>("--max-tokens") { Description = "max_tokens of each request", DefaultValueFactory = _ => 32 };
        var maxBatch = new Option<int>("--max-batch") { Description = "The server's max batch", DefaultValueFactory = _ => 16 };
        var ignoreEos = new Option<bool>("--ignore-eos")
        {
            Description = "Every request generates exactly --max-tokens (vLLM's ignore_eos, as serving benchmarks do); --ignore-eos false stops at the model's end of turn",
            DefaultValueFactory = _ => true,
        };
        var endpoint = new Option<string?>("--endpoint") { Description = "Benchmark this running endpoint (e.g. http://127.0.0.1:8000) instead of an in-process server" };
        var servedModel = new Option<string?>("--served-model") { Description = "With --endpoint: the model name to request (default: the first of its /v1/models)" };
        var json = new Option<bool>("--json") { Description = "Print one JSON object" };
        var cmd = new Command("serve", "OpenAI-compatible server: sequential vs concurrent requests/s, latency, tokens/s (continuous batching)");
        foreach (var o in new Option[] { model, clients, requests, maxTokens, maxBatch, ignoreEos, endpoint, servedModel, json }) cmd.Options.Add(o);
        cmd.SetAction(parse =>
        {
            CommandKit.ConfigureTorch(parse);
            int n = parse.GetValue(requests), c = parse.GetValue(clients), maxTok = parse.GetValue(maxTokens);
            if (n < 1 || c < 1) throw new ServeException("--requests and --clients must be ≥ 1");
            var options = new ServeOptions { ModelDir = parse.GetValue(model)!, Port = 0, MaxBatch = parse.GetValue(maxBatch), ServedModelName = "bench" };
            string? external = parse.GetValue(endpoint);
            var server = external is null ? OpenAiServer.StartAsync(options).GetAwaiter().GetResult() : null;
            try
            {
                var address = server?.BaseAddress ?? new Uri(Serving.Client.OpenAiClient.ApiBaseOf(external!), "..");
                using var http = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromMinutes(10) };
                string modelName = server is not null ? "bench" : parse.GetValue(servedModel) ?? FirstModel(external!);
                string target = server is not null ? options.ModelDir : $"{external} ({modelName})";
                var bodies = Enumerable.Range(0, n).Select(i => Body(i, maxTok, modelName, parse.GetValue(ignoreEos))).ToArray();
                var warm = Send(http, bodies[0]).GetAwaiter().GetResult();   // warm-up (not measured)
                if (!warm.Ok) throw new ServeException($"{target}: the warm-up request failed: {warm.Error}");
                var sequential = Phase(http, bodies, 1);
                var concurrent = Phase(http, bodies, c);
                double speedup = concurrent.RequestsPerSecond / sequential.RequestsPerSecond;
                var stats = server?.Engine.Statistics;
                if (parse.GetValue(json))
                    CommandKit.WriteSnakeJson(new { Model = target, Requests = n, Clients = c, MaxTokens = maxTok, IgnoreEos = parse.GetValue(ignoreEos), MaxBatch = server is null ? (int?)null : options.MaxBatch,
                        Sequential = sequential, Concurrent = concurrent, BatchingSpeedup = Math.Round(speedup, 3), Failures = sequential.Failures + concurrent.Failures,
                        DecodeSteps = stats?.Steps, Compactions = stats?.Compactions });
                else
                {
                    Console.WriteLine($"mmx bench serve: {target}, {n} requests (image + question, max_tokens {maxTok}{(parse.GetValue(ignoreEos) ? ", ignore_eos" : "")}, greedy)" +
                                      (server is null ? "" : $", max batch {options.MaxBatch}"));
                    foreach (var p in new[] { sequential, concurrent })
                        Console.WriteLine($"  {p.Clients,2} client(s): {p.RequestsPerSecond,7:F2} req/s  p50 {p.P50Seconds,6:F3} s  p99 {p.P99Seconds,6:F3} s  {p.TokensPerSecond,8:F1} tokens/s  failures {p.Failures}");
                    Console.WriteLine($"  batching_speedup {speedup:F2} (concurrent req/s over sequential)" + (stats is { } st ? $"; decode steps {st.Steps}, compactions {st.Compactions}" : ""));
                }
                return sequential.Failures + concurrent.Failures == 0 ? 0 : 1;
            }
            finally { server?.StopAsync().GetAwaiter().GetResult(); }
        });
        return cmd;
    }

    public sealed record PhaseResult(int Clients, int Requests, double Seconds, double RequestsPerSecond, double P50Seconds, double P99Seconds,
        long CompletionTokens, double TokensPerSecond, int Failures);

    /// <summary>The first model an endpoint lists (GET /v1/models).</summary>
    static string FirstModel(string endpoint)
    {
        using var client = new Serving.Client.OpenAiClient(endpoint);
        var models = client.ModelsAsync().GetAwaiter().GetResult();
        return models.Count > 0 ? models[0].Id : throw new ServeException($"{endpoint}: /v1/models lists no model; name one with --served-model");
    }

    static JsonObject Body(int i, int maxTokens, string modelName, bool ignoreEos)
    {
        // A MedSynth-like image: seeded noise over a bright disc, 56×56 (one merged 2×2 grid).
        var rng = new Random(1000 + i);
        var pixels = new byte[56 * 56 * 3];
        for (int y = 0; y < 56; y++)
            for (int x = 0; x < 56; x++)
            {
                double r = Math.Sqrt((x - 28) * (x - 28) + (y - 28) * (y - 28));
                int level = (r < 10 + i % 8 ? 180 : 60) + rng.Next(40);
                for (int ch = 0; ch < 3; ch++) pixels[(y * 56 + x) * 3 + ch] = (byte)Math.Min(255, level);
            }
        string url = "data:image/png;base64," + Convert.ToBase64String(PngEncoder.Encode(pixels, 56, 56, 3));
        string[] questions = ["What does the image show?", "Describe the finding in the image.", "What is the most likely diagnosis?", "Is the lesion round?"];
        return new JsonObject
        {
            ["model"] = modelName,
            ["messages"] = new JsonArray(new JsonObject
            {
                ["role"] = "user",
                ["content"] = new JsonArray(
                    new JsonObject { ["type"] = "image_url", ["image_url"] = new JsonObject { ["url"] = url } },
                    new JsonObject { ["type"] = "text", ["text"] = questions[i % questions.Length] }),
            }),
            ["max_tokens"] = maxTokens,
            ["temperature"] = 0.0,
            ["ignore_eos"] = ignoreEos,
        };
    }

    static async Task<(bool Ok, double Seconds, long Tokens, string? Error)> Send(HttpClient http, JsonObject body)
    {
        var watch = Stopwatch.StartNew();
        try
        {
            using var response = await http.PostAsJsonAsync("v1/chat/completions", body);
            string text = await response.Content.ReadAsStringAsync();
            if (!response.IsSuccessStatusCode)
                return (false, watch.Elapsed.TotalSeconds, 0, $"HTTP {(int)response.StatusCode}: {Serving.Client.OpenAiClient.ErrorMessage(text, response.StatusCode)}");
            var json = JsonNode.Parse(text);
            return (true, watch.Elapsed.TotalSeconds, json?["usage"]?["completion_tokens"]?.GetValue<long>() ?? 0, null);
        }
        catch (HttpRequestException e) { return (false, watch.Elapsed.TotalSeconds, 0, e.Message); }
    }

    static PhaseResult Phase(HttpClient http, JsonObject[] bodies, int clients)
    {
        int next = -1;
        var results = new System.Collections.Concurrent.ConcurrentBag<(bool Ok, double Seconds, long Tokens, string? Error)>();
        var watch = Stopwatch.StartNew();
        var workers = Enumerable.Range(0, clients).Select(_ => Task.Run(async () =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < bodies.Length) results.Add(await Send(http, bodies[i]));
        })).ToArray();
        Task.WaitAll(workers);
        double seconds = watch.Elapsed.TotalSeconds;
        var latencies = results.Where(r => r.Ok).Select(r => r.Seconds).OrderBy(s => s).ToArray();
        double Percentile(double p) => latencies.Length == 0 ? double.NaN : latencies[Math.Min(latencies.Length - 1, (int)Math.Ceiling(p * latencies.Length) - 1)];
        long tokens = results.Sum(r => r.Tokens);
        return new PhaseResult(clients, bodies.Length, Math.Round(seconds, 3), Math.Round(bodies.Length / seconds, 3), Math.Round(Percentile(0.5), 4),
            Math.Round(Percentile(0.99), 4), tokens, Math.Round(tokens / seconds, 1), results.Count(r => !r.Ok) + (bodies.Length - results.Count));
    }
}
