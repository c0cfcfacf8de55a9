using System.CommandLine;
using System.Diagnostics;
using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;
using MMedExpert.Core;
using MMedExpert.Core.Lora;
using MMedExpert.Core.Runtime;
using MMedExpert.Core.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MMedExpert.Cli.Commands.Bench;

/// <summary>
/// `mmx bench lora`: training tokens/s and peak memory with LoRA vs full fine-tuning of the same model, same batches,
/// same run. Each mode runs in a fresh child process (`mmx bench lora --child-mode MODE`), because the memory peak
/// (VmHWM) cannot be reset inside a process: each child's VmHWM is that mode's peak, and "train_extra_bytes" is the
/// peak minus the resident size once the model was built (activations, gradients, optimizer state). With
/// --in-process (or when mmx cannot start itself) both modes run here and the peak is the highest VmRSS sampled after
/// each forward, backward and optimizer step, minus the VmRSS before training: an approximation from below.
/// </summary>
public static class LoraBench
{
    public static Command Create()
    {
        var preset = new Option<string>("--preset") { Description = $"Model preset ({string.Join(", ", LoraBenchSubjects.Presets.Keys)})", DefaultValueFactory = _ => "toy" };
        var steps = new Option<int>("--steps") { Description = "Measured optimizer steps per mode", DefaultValueFactory = _ => 8 };
        var warmup = new Option<int>("--warmup") { Description = "Unmeasured steps first", DefaultValueFactory = _ => 2 };
        var batch = new Option<int>("--batch") { Description = "Sequences per batch", DefaultValueFactory = _ => 4 };
        var seq = new Option<int>("--seq") { Description = "Tokens per sequence", DefaultValueFactory = _ => 128 };
        var rank = new Option<int>("--rank") { Description = "LoRA rank (alpha = 2·rank, default LM targets)", DefaultValueFactory = _ => 16 };
        var inProcess = new Option<bool>("--in-process") { Description = "Run both modes in this process (sampled RSS instead of per-process peaks)" };
        var childMode = new Option<string?>("--child-mode") { Description = "Internal: measure one mode (lora|full) and print its JSON", Hidden = true };
        var json = new Option<bool>("--json") { Description = "Print one JSON object" };
        var cmd = new Command("lora", "Training tokens/s and peak memory: LoRA vs full fine-tuning of the same model in the same run");
        foreach (var o in new Option[] { preset, steps, warmup, batch, seq, rank, inProcess, childMode, json }) cmd.Options.Add(o);
        cmd.SetAction(parse =>
        {
            CommandKit.ConfigureTorch(parse);
            string name = parse.GetValue(preset)!;
            if (!LoraBenchSubjects.Presets.ContainsKey(name))
                throw new MmxException($"--preset: unknown preset '{name}' (known: {string.Join(", ", LoraBenchSubjects.Presets.Keys)})");
            var settings = new Settings(name, Math.Max(1, parse.GetValue(steps)), Math.Max(0, parse.GetValue(warmup)),
                new LoraBenchShape(Math.Max(1, parse.GetValue(batch)), Math.Max(2, parse.GetValue(seq)), 1), Math.Max(1, parse.GetValue(rank)));

            if (parse.GetValue(childMode) is { } mode)
            {
                Console.WriteLine(Measure(settings, mode, sampleOnly: false).ToJsonString());
                return 0;
            }

            string method;
            JsonObject lora, full;
            var self = SelfCommand();
            if (!parse.GetValue(inProcess) && self is { } s)
            {
                method = "child process per mode; peak_rss_bytes = the child's VmHWM";
                var forward = new List<string>
                {
                    "--preset", name, "--steps", $"{settings.Steps}", "--warmup", $"{settings.Warmup}", "--batch", $"{settings.Shape.Batch}",
                    "--seq", $"{settings.Shape.Sequence}", "--rank", $"{settings.Rank}", "--threads", $"{get_num_threads()}",
                };
                lora = RunChild(s, forward, "lora");
                full = RunChild(s, forward, "full");
            }
            else
            {
                method = "in-process; peaks are the highest VmRSS sampled after forward/backward/step";
                lora = Measure(settings, "lora", sampleOnly: true);
                full = Measure(settings, "full", sampleOnly: true);
            }
            double Ratio(string key) => Math.Round(Number(lora[key]) / Math.Max(1e-12, Number(full[key])), 4);
            var result = new JsonObject
            {
                ["preset"] = name,
                ["model"] = lora["model"]?.DeepClone(),
                ["batch"] = settings.Shape.Batch,
                ["seq"] = settings.Shape.Sequence,
                ["steps"] = settings.Steps,
                ["threads"] = get_num_threads(),
                ["lora"] = lora,
                ["full"] = full,
                ["lora_over_full_tokens_per_s"] = Ratio("tokens_per_s"),
                ["lora_over_full_train_extra_bytes"] = Ratio("train_extra_bytes"),
                ["lora_over_full_trainable_params"] = Ratio("trainable_params"),
                ["method"] = method,
            };
            if (parse.GetValue(json)) CommandKit.WriteJson(result);
            else
            {
                Console.WriteLine($"{name}: {result["model"]}");
                foreach (var (label, r) in new[] { ("LoRA", lora), ("full", full) })
                    Console.WriteLine($"  {label,-5} {r["tokens_per_s"]} tokens/s, trainable {r["trainable_params"]}, " +
                                      $"peak RSS {Mb(r["peak_rss_bytes"])} MB, training extra {Mb(r["train_extra_bytes"])} MB");
                Console.WriteLine($"  LoRA/full: tokens/s ×{result["lora_over_full_tokens_per_s"]}, training memory ×{result["lora_over_full_train_extra_bytes"]} ({method})");
            }
            return 0;
        });
        return cmd;
    }

    sealed record Settings(string Preset, int Steps, int Warmup, LoraBenchShape Shape, int Rank);

    static string Mb(JsonNode? bytes) => bytes is null ? "?" : (Number(bytes) / (1 << 20)).ToString("0.0");

    /// <summary>A JSON number whether it was parsed from text (a child's output) or built here from a long.</summary>
    static double Number(JsonNode? node) =>
        node is JsonValue v && (v.TryGetValue<double>(out var d) || (v.TryGetValue<long>(out var l) && (d = l) == l)) ? d
        : throw new MmxException($"bench lora: expected a number, got {node?.ToJsonString() ?? "nothing"}");

    /// <summary>Trains one mode for warmup + steps and reports speed and memory.</summary>
    static JsonObject Measure(Settings s, string mode, bool sampleOnly)
    {
        if (mode is not ("lora" or "full")) throw new MmxException($"--child-mode: expected lora or full, got '{mode}'");
        using var subject = LoraBenchSubjects.Presets[s.Preset](s.Shape);
        long rssBuilt = ProcessMemory.CurrentRssBytes() ?? 0;
        LoraAdapters? adapters = null;
        IReadOnlyList<Parameter> parameters;
        if (mode == "lora")
        {
            adapters = new LoraAdapters(subject.Model);
            adapters.Add("bench", new LoraConfig { R = s.Rank, Alpha = 2 * s.Rank, Dropout = 0.0 }, 1);
            adapters.SetActive("bench");
            parameters = adapters.TrainableParameters("bench");
        }
        else
        {
            parameters = subject.Model.parameters().ToList();
            foreach (var p in parameters) p.requires_grad = true;
        }
        long total = subject.Model.parameters().Sum(p => p.numel()) + (adapters?.Modules("bench").Sum(w => w.A.numel() + w.B.numel()) ?? 0);
        long trainable = parameters.Sum(p => p.numel());
        using var optimizer = optim.AdamW(parameters, 1e-4);
        long rssBefore = ProcessMemory.CurrentRssBytes() ?? 0, sampled = rssBefore;
        void Sample() => sampled = Math.Max(sampled, ProcessMemory.CurrentRssBytes() ?? 0);
        var clock = new Stopwatch();
        for (int i = 0; i < s.Warmup + s.Steps; i++)
        {
            if (i == s.Warmup) clock.Start();
            using var scope = NewDisposeScope();
            optimizer.zero_grad();
            var loss = subject.Loss(i);
            Sample();
            loss.backward();
            Sample();
            optimizer.step();
            Sample();
        }
        clock.Stop();
        adapters?.Dispose();
        long peak = sampleOnly ? sampled : ProcessMemory.PeakRssBytes() ?? sampled;
        return new JsonObject
        {
            ["mode"] = mode,
            ["model"] = subject.Description,
            ["tokens_per_s"] = Math.Round(s.Steps * subject.TokensPerBatch / clock.Elapsed.TotalSeconds, 1),
            ["seconds_per_step"] = Math.Round(clock.Elapsed.TotalSeconds / s.Steps, 4),
            ["trainable_params"] = trainable,
            ["total_params"] = total,
            ["rss_after_build_bytes"] = rssBuilt,
            ["peak_rss_bytes"] = sampleOnly ? sampled : peak,
            ["train_extra_bytes"] = (sampleOnly ? sampled - rssBefore : peak - rssBuilt),
        };
    }

    /// <summary>How to start mmx again: (program, leading arguments); null when this process is not mmx (e.g. tests).</summary>
    static (string Program, string[] Prefix)? SelfCommand()
    {
        var entry = Assembly.GetEntryAssembly();
        string? process = Environment.ProcessPath;
        if (entry?.GetName().Name != "mmx" || process is null) return null;
        return Path.GetFileNameWithoutExtension(process) == "dotnet" ? (process, new[] { entry.Location }) : (process, Array.Empty<string>());
    }

    static JsonObject RunChild((string Program, string[] Prefix) self, IEnumerable<string> forwarded, string mode)
    {
        var info = new ProcessStartInfo(self.Program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in self.Prefix) info.ArgumentList.Add(a);
        info.ArgumentList.Add("bench");
        info.ArgumentList.Add("lora");
        foreach (var a in forwarded) info.ArgumentList.Add(a);
        info.ArgumentList.Add("--child-mode");
        info.ArgumentList.Add(mode);
        using var process = Process.Start(info) ?? throw new MmxException($"bench lora: cannot start {self.Program}");
        var stderr = process.StandardError.ReadToEndAsync();
        string stdout = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0)
            throw new MmxException($"bench lora: the {mode} run failed (exit {process.ExitCode}): {stderr.Result.Trim()}");
        var line = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).LastOrDefault()
                   ?? throw new MmxException($"bench lora: the {mode} run printed nothing");
        return JsonNode.Parse(line) as JsonObject ?? throw new MmxException($"bench lora: the {mode} run printed '{line}'");
    }
}
