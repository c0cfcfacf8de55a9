using System.CommandLine;
using System.Diagnostics;
using MMedExpert.Core;
using MMedExpert.Core.Lora;
using MMedExpert.Core.Model;
using MMedExpert.Core.Model.Loading;
using MMedExpert.Core.Runtime;
using MMedExpert.Core.Training;
using MMedExpert.Core.Training.Sft;
using MMedExpert.Data.Schema;

namespace MMedExpert.Cli.Commands;

/// <summary>Settings of a DSA run (one LoRA expert per specialty from one base).</summary>
public sealed record DsaSettings
{
    public required string Data { get; init; }
    public required string BaseDir { get; init; }
    public required string OutDir { get; init; }
    public IReadOnlyList<string> Specialties { get; init; } = Vocabulary.Specialties;
    /// <summary>One initialization per specialty in order (cycled when shorter): DSA's diverse starting points.</summary>
    public IReadOnlyList<LoraInit> Inits { get; init; } = DefaultInits;
    public static readonly IReadOnlyList<LoraInit> DefaultInits = new[] { LoraInit.Gaussian, LoraInit.PiSSA, LoraInit.OLoRA, LoraInit.Kaiming };
    public int Rank { get; init; } = 8;
    public double Alpha { get; init; } = 16;
    public double Dropout { get; init; } = 0.05;
    public int Steps { get; init; } = 120;
    public int BatchSize { get; init; } = 16;
    public int Accumulation { get; init; } = 1;
    public double LearningRate { get; init; } = 2e-3;
    public int WarmupSteps { get; init; } = -1;
    public int CheckpointEvery { get; init; } = 20;
    public long Seed { get; init; }
    /// <summary>Which trace the experts learn to write (Full: the item's own; Compact: findings and conclusion only).</summary>
    public TraceStyle Trace { get; init; } = TraceStyle.Full;
    public bool Resume { get; init; }
    /// <summary>Matmul precision: fp32, or bf16 mixed precision (fp32 master weights and optimizer state).</summary>
    public string Dtype { get; init; } = "fp32";
}

/// <summary>What one expert's training did.</summary>
public sealed record DsaExpertResult(string Specialty, string Init, int Samples, long Steps, double? FirstLoss, double? LastLoss,
    double Seconds, string Adapter, string Metrics, bool Completed);

/// <summary>
/// `mmx dsa`: Domain-Specific Adaptation. For each specialty, a fresh copy of the base gets a LoRA adapter with that
/// specialty's initialization and is fine-tuned on the specialty's reasoning traces (loss on the assistant tokens);
/// the expert is saved as a PEFT adapter in OUT/experts/&lt;specialty&gt;/sft/, its curve in OUT/metrics/dsa-&lt;specialty&gt;.jsonl,
/// its resumable checkpoint in OUT/checkpoints/dsa-&lt;specialty&gt;/.
/// </summary>
public static class DsaCommand
{
    public static Command Create()
    {
        var data = new Option<string>("--data") { Description = "MMedExpert JSONL file, or a data folder (its sft.jsonl is read)", Required = true };
        var baseDir = new Option<string>("--base") { Description = "Base model folder (HF layout with tokenizer.json)", Required = true };
        var outDir = new Option<string>("--out") { Description = "Output folder (experts/, metrics/, checkpoints/)", Required = true };
        var specialties = new Option<string[]>("--specialties")
        {
            Description = $"Specialties to train, comma- or space-separated (default: {string.Join(",", Vocabulary.Specialties)})",
            AllowMultipleArgumentsPerToken = true,
        };
        var inits = new Option<string[]>("--init")
        {
            Description = $"Initialization per specialty, in order, cycled ({string.Join(", ", LoraInits.Names)}; default gaussian,pissa,olora,kaiming)",
            AllowMultipleArgumentsPerToken = true,
        };
        var rank = new Option<int>("--rank") { Description = "LoRA rank r", DefaultValueFactory = _ => 8 };
        var alpha = new Option<double>("--alpha") { Description = "LoRA alpha (scale alpha/r)", DefaultValueFactory = _ => 16 };
        var dropout = new Option<double>("--dropout") { Description = "LoRA dropout", DefaultValueFactory = _ => 0.05 };
        var steps = new Option<int>("--steps") { Description = "Optimizer steps per expert", DefaultValueFactory = _ => 120 };
        var batch = new Option<int>("--batch-size") { Description = "Samples per micro-batch", DefaultValueFactory = _ => 16 };
        var accumulation = new Option<int>("--accumulation") { Description = "Micro-batches per optimizer step", DefaultValueFactory = _ => 1 };
        var lr = new Option<double>("--lr") { Description = "Peak learning rate (cosine schedule)", DefaultValueFactory = _ => 2e-3 };
        var warmup = new Option<int>("--warmup") { Description = "Warmup steps (default: 5% of the steps)", DefaultValueFactory = _ => -1 };
        var checkpointEvery = new Option<int>("--checkpoint-every") { Description = "Checkpoint every N steps (and at the end)", DefaultValueFactory = _ => 20 };
        var seed = new Option<long>("--seed") { Description = "Run seed (each expert derives its own from it and its specialty)", DefaultValueFactory = _ => 0 };
        var trace = new Option<string>("--trace") { Description = "Trace to learn: full (the item's reasoning) or compact (findings + conclusion)", DefaultValueFactory = _ => "full" };
        var resume = new Option<bool>("--resume") { Description = "Continue each expert from its checkpoint (finished experts are kept)" };
        var json = new Option<bool>("--json") { Description = "Print the results as JSON" };
        var dtype = new Option<string>("--dtype") { Description = "Matmul precision: fp32, or bf16 (mixed precision, fp32 master weights)", DefaultValueFactory = _ => "fp32" };
        var cmd = new Command("dsa", "Domain-Specific Adaptation: one LoRA expert per specialty (SFT on reasoning traces), each from its own initialization");
        foreach (var o in new Option[] { data, baseDir, outDir, specialties, inits, rank, alpha, dropout, steps, batch, accumulation, lr, warmup, checkpointEvery, seed, trace, resume, json, dtype })
            cmd.Options.Add(o);
        cmd.SetAction(parse =>
        {
            CommandKit.ConfigureTorch(parse);
            var settings = new DsaSettings
            {
                Data = parse.GetValue(data)!, BaseDir = parse.GetValue(baseDir)!, OutDir = parse.GetValue(outDir)!,
                Specialties = SplitList(parse.GetValue(specialties)) is { Count: > 0 } s ? s : Vocabulary.Specialties,
                Inits = SplitList(parse.GetValue(inits)) is { Count: > 0 } i ? i.Select(ParseInit).ToList() : DsaSettings.DefaultInits,
                Rank = parse.GetValue(rank), Alpha = parse.GetValue(alpha), Dropout = parse.GetValue(dropout), Steps = parse.GetValue(steps),
                BatchSize = parse.GetValue(batch), Accumulation = parse.GetValue(accumulation), LearningRate = parse.GetValue(lr),
                WarmupSteps = parse.GetValue(warmup), CheckpointEvery = parse.GetValue(checkpointEvery), Seed = parse.GetValue(seed),
                Trace = parse.GetValue(trace)!.Trim().ToLowerInvariant() switch
                {
                    "full" => TraceStyle.Full,
                    "compact" => TraceStyle.Compact,
                    var other => throw new MmxException($"--trace: expected full or compact, got '{other}'"),
                },
                Resume = parse.GetValue(resume),
                Dtype = parse.GetValue(dtype)!,
            };
            var results = Run(settings, ProgressReporter.Create());
            if (parse.GetValue(json)) CommandKit.WriteSnakeJson(results);
            else
                foreach (var r in results)
                    Console.WriteLine($"{r.Specialty} ({r.Init}, {r.Samples} samples): loss {Format(r.FirstLoss)} → {Format(r.LastLoss)} in {r.Seconds:0.0} s" +
                                      (r.Completed ? $" → {r.Adapter}" : " (interrupted; --resume continues)"));
            return results.All(r => r.Completed) ? 0 : 1;
        });
        return cmd;
    }

    /// <summary>A metrics line's loss (a diverged run writes "NaN" as a string: reported as NaN).</summary>
    static double? Loss(System.Text.Json.Nodes.JsonObject line) =>
        line["loss"] is System.Text.Json.Nodes.JsonValue v ? (v.TryGetValue<double>(out var d) ? d : double.NaN) : null;

    static string Format(double? loss) => loss is double d ? d.ToString("0.####", System.Globalization.CultureInfo.InvariantCulture) : "-";

    /// <summary>"a,b c" and repeated options as one list.</summary>
    public static IReadOnlyList<string> SplitList(string[]? values) =>
        (values ?? Array.Empty<string>()).SelectMany(v => v.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)).ToList();

    static LoraInit ParseInit(string name)
    {
        try { return LoraInits.Parse(name); }
        catch (Exception e) when (e is ArgumentException or LoraException)
        {
            throw new MmxException($"--init: unknown initialization '{name}' (known: {string.Join(", ", LoraInits.Names)})");
        }
    }

    /// <summary>Trains every expert in turn (the pipeline's DSA stage calls this too).</summary>
    public static IReadOnlyList<DsaExpertResult> Run(DsaSettings s, ProgressReporter? progress = null)
    {
        if (s.Specialties.Count == 0) throw new MmxException("--specialties: no specialty given");
        if (s.Inits.Count == 0) throw new MmxException("--init: no initialization given");
        foreach (var sp in s.Specialties)
            if (!Vocabulary.Specialties.Contains(sp))
                throw new MmxException($"--specialties: unknown specialty '{sp}' (known: {string.Join(", ", Vocabulary.Specialties)})");
        if (s.Rank <= 0) throw new MmxException($"--rank: must be positive (got {s.Rank})");
        if (s.BatchSize <= 0) throw new MmxException($"--batch-size: must be positive (got {s.BatchSize})");
        var encoder = ModelFolder.ChatEncoder(s.BaseDir);
        var (all, file, dataDir) = MedItemData.Load(s.Data, Vocabulary.Sft);
        var results = new List<DsaExpertResult>();
        for (int k = 0; k < s.Specialties.Count; k++)
        {
            string specialty = s.Specialties[k];
            var init = s.Inits[k % s.Inits.Count];
            var samples = all.Where(i => i.Specialty == specialty).Select(i => MedItemSamples.Training(i, dataDir, s.Trace)).ToList();
            if (samples.Count == 0) throw new MmxException($"{file}: no items of specialty '{specialty}'");
            string adapterDir = Path.Combine(s.OutDir, "experts", specialty, "sft");
            string metrics = Path.Combine(s.OutDir, "metrics", $"dsa-{specialty}.jsonl");
            var options = new TrainerOptions
            {
                LearningRate = s.LearningRate,
                WarmupSteps = s.WarmupSteps >= 0 ? s.WarmupSteps : Math.Max(1, s.Steps / 20),
                TotalSteps = s.Steps,
                Accumulation = s.Accumulation,
                CheckpointEvery = s.CheckpointEvery,
                Seed = Seeds.Derive(s.Seed, specialty),
                MetricsPath = metrics,
                Description = $"dsa {specialty} ({init.Name()})",
            };
            var lora = new LoraConfig { R = s.Rank, Alpha = s.Alpha, Dropout = s.Dropout, Init = init };
            var clock = Stopwatch.StartNew();
            var run = DsaRunner.TrainExpert(s.BaseDir, encoder, samples, specialty, lora, options, s.BatchSize, adapterDir,
                Path.Combine(s.OutDir, "checkpoints", $"dsa-{specialty}"), progress, s.Resume, compute: MixedPrecision.Parse(s.Dtype));
            var curve = File.Exists(metrics) ? MetricsWriter.Read(metrics) : [];
            results.Add(new DsaExpertResult(specialty, init.Name(), samples.Count, run.LastStep,
                curve.Count > 0 ? Loss(curve[0]) : null, curve.Count > 0 ? Loss(curve[^1]) : null,
                Math.Round(clock.Elapsed.TotalSeconds, 2), adapterDir, metrics, run.Completed));
        }
        return results;
    }
}
