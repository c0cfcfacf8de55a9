using System.CommandLine;
using System.Diagnostics;
using System.Text.Json.Nodes;
using MMedExpert.Algebra.Advantages;
using GrpoOptions = MMedExpert.Core.Training.Grpo.GrpoOptions;
using MMedExpert.Algebra.Rewards;
using MMedExpert.Core;
using MMedExpert.Core.Lora;
using MMedExpert.Core.Model;
using MMedExpert.Core.Model.Generation;
using MMedExpert.Core.Model.Loading;
using MMedExpert.Core.Training;
using MMedExpert.Core.Training.Grpo;
using MMedExpert.Data.Schema;
using MMedExpert.Serving.Client;

namespace MMedExpert.Cli.Commands;

/// <summary>Settings of one expert's RL run.</summary>
public sealed record GbaSettings
{
    public required string BaseDir { get; init; }
    /// <summary>Matmul precision of rollouts and updates: fp32, or bf16 mixed precision (fp32 master weights).</summary>
    public string Dtype { get; init; } = "fp32";
    public required string AdapterDir { get; init; }
    public required string Data { get; init; }
    public required string OutDir { get; init; }
    /// <summary>Guideline reward spec (JSON); null = the embedded default.</summary>
    public string? Spec { get; init; }
    /// <summary>Only this specialty's items (null: every item of the file).</summary>
    public string? Specialty { get; init; }
    public string Advantage { get; init; } = "gba";
    /// <summary>Where the metrics go (default OUT/metrics.jsonl).</summary>
    public string? MetricsPath { get; init; }
    public GrpoOptions Grpo { get; init; } = new();
    public bool Resume { get; init; }
    /// <summary>Sample rollouts from this OpenAI-compatible endpoint (null: from the local model).</summary>
    public string? RolloutEndpoint { get; init; }
    /// <summary>The LoRA name the adapter is published under on the endpoint (null: "&lt;adapter folder&gt;-rl").</summary>
    public string? RolloutModel { get; init; }
    public int RolloutConcurrency { get; init; } = 8;
    public string? RolloutApiKey { get; init; }
}

/// <summary>What an RL run did: the reward and accuracy of its first and last quarter of steps.</summary>
public sealed record GbaResult(string Advantage, int Prompts, long Steps, bool Completed, double Seconds, string Adapter, string Metrics,
    double FirstRewardMean, double LastRewardMean, double FirstAccuracy, double LastAccuracy, int Window);

/// <summary>
/// `mmx gba`: reinforcement learning of one expert's LoRA adapter with guideline-based advantages (or another estimator
/// for ablations): G sampled completions per prompt, one reward per clinical perspective from the guideline spec,
/// advantages from the Algebra library, clipped policy-gradient updates with a KL penalty to the base (adapter off).
/// Writes OUT/metrics.jsonl (one line per step), OUT/checkpoint/ (resumable) and the trained adapter as PEFT in OUT/adapter/.
/// With --rollout-endpoint the completions come from an OpenAI-compatible server (Serving/Client/EndpointRollouts), the
/// adapter being published to it before each step; learning stays here (docs/endpoint-client.md).
/// </summary>
public static class GbaCommand
{
    public static Command Create()
    {
        var baseDir = new Option<string>("--base") { Description = "Base model folder (HF layout with tokenizer.json)", Required = true };
        var adapter = new Option<string>("--adapter") { Description = "The expert's PEFT adapter folder (e.g. OUT/experts/<specialty>/sft)", Required = true };
        var data = new Option<string>("--data") { Description = "MMedExpert JSONL file, or a data folder (its rl.jsonl is read)", Required = true };
        var spec = new Option<string?>("--spec") { Description = "Guideline reward spec JSON (default: the embedded one)" };
        var outDir = new Option<string>("--out") { Description = "Output folder (adapter/, checkpoint/, metrics.jsonl)", Required = true };
        var specialty = new Option<string?>("--specialty") { Description = "Train on this specialty's items only" };
        var advantage = new Option<string>("--advantage") { Description = $"Advantage estimator ({string.Join(", ", EstimatorModule.names)})", DefaultValueFactory = _ => "gba" };
        var steps = new Option<int>("--steps") { Description = "RL steps", DefaultValueFactory = _ => 12 };
        var group = new Option<int>("--group-size") { Description = "G: completions sampled per prompt", DefaultValueFactory = _ => 8 };
        var prompts = new Option<int>("--prompts-per-step") { Description = "Prompts per step", DefaultValueFactory = _ => 4 };
        var beta = new Option<double>("--beta") { Description = "KL penalty weight (0: no reference pass)", DefaultValueFactory = _ => 0.02 };
        var klReference = new Option<string>("--kl-reference")
        {
            Description = "KL reference policy: start (the adapter RL starts from) or base (adapters off)", DefaultValueFactory = _ => "start",
        };
        var kl = new Option<string>("--kl") { Description = "KL estimator: k1, k2, k3", DefaultValueFactory = _ => "k3" };
        var aggregation = new Option<string>("--loss-aggregation")
        {
            Description = "token-mean, seq-mean-token-mean, seq-mean-token-sum, constant (Dr.GRPO)", DefaultValueFactory = _ => "token-mean",
        };
        var multiStrategy = new Option<bool>("--multi-strategy") { Description = "Split each group across the spec's guideline prompts" };
        var temperature = new Option<double>("--temperature") { Description = "Sampling temperature", DefaultValueFactory = _ => 1.0 };
        var topP = new Option<double>("--top-p") { Description = "Nucleus sampling p", DefaultValueFactory = _ => 1.0 };
        var maxNew = new Option<int>("--max-new-tokens") { Description = "Completion length limit", DefaultValueFactory = _ => 64 };
        var lr = new Option<double>("--lr") { Description = "Peak learning rate", DefaultValueFactory = _ => 5e-4 };
        var updates = new Option<int>("--updates") { Description = "μ: policy updates per rollout batch", DefaultValueFactory = _ => 1 };
        var rolloutBatch = new Option<int>("--rollout-batch") { Description = "Sequences generated or scored per forward batch", DefaultValueFactory = _ => 32 };
        var checkpointEvery = new Option<int>("--checkpoint-every") { Description = "Checkpoint every N steps (and at the end)", DefaultValueFactory = _ => 5 };
        var seed = new Option<long>("--seed") { Description = "Run seed", DefaultValueFactory = _ => 0 };
        var metrics = new Option<string?>("--metrics") { Description = "Metrics JSONL path (default OUT/metrics.jsonl)" };
        var resume = new Option<bool>("--resume") { Description = "Continue from OUT/checkpoint" };
        var json = new Option<bool>("--json") { Description = "Print the result as JSON" };
        var dtype = new Option<string>("--dtype") { Description = "Matmul precision: fp32, or bf16 (mixed precision, fp32 master weights)", DefaultValueFactory = _ => "fp32" };
        var rolloutEndpoint = new Option<string?>("--rollout-endpoint")
        {
            Description = "Sample rollouts from this OpenAI-compatible server (mmx serve, vLLM with --enable-lora and " +
                          "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True) serving the same base; learning stays local. Before each step the adapter " +
                          "is saved to OUT/endpoint-adapter/step-<k>/ and loaded there by path: the server must see the same filesystem path",
        };
        var rolloutModel = new Option<string?>("--rollout-model") { Description = "With --rollout-endpoint: the LoRA name to publish the adapter under (default <adapter folder>-rl)" };
        var rolloutConcurrency = new Option<int>("--rollout-concurrency") { Description = "With --rollout-endpoint: requests in flight at once", DefaultValueFactory = _ => 8 };
        var rolloutApiKey = new Option<string?>("--rollout-api-key") { Description = "With --rollout-endpoint: bearer token the server expects" };
        var cmd = new Command("gba", "RL of one expert's adapter with guideline-based advantages (GRPO-style; --advantage for ablations)");
        foreach (var o in new Option[] { baseDir, adapter, data, spec, outDir, specialty, advantage, steps, group, prompts, beta, klReference, kl, aggregation,
                                          multiStrategy, temperature, topP, maxNew, lr, updates, rolloutBatch, checkpointEvery, seed, metrics, resume, json, dtype,
                                          rolloutEndpoint, rolloutModel, rolloutConcurrency, rolloutApiKey })
            cmd.Options.Add(o);
        cmd.SetAction(parse =>
        {
            CommandKit.ConfigureTorch(parse);
            var settings = new GbaSettings
            {
                BaseDir = parse.GetValue(baseDir)!, AdapterDir = parse.GetValue(adapter)!, Data = parse.GetValue(data)!, Spec = parse.GetValue(spec),
                OutDir = parse.GetValue(outDir)!, Specialty = parse.GetValue(specialty), Advantage = parse.GetValue(advantage)!,
                MetricsPath = parse.GetValue(metrics), Resume = parse.GetValue(resume), Dtype = parse.GetValue(dtype)!,
                RolloutEndpoint = parse.GetValue(rolloutEndpoint), RolloutModel = parse.GetValue(rolloutModel),
                RolloutConcurrency = parse.GetValue(rolloutConcurrency), RolloutApiKey = parse.GetValue(rolloutApiKey),
                Grpo = new GrpoOptions
                {
                    Steps = parse.GetValue(steps), GroupSize = parse.GetValue(group), PromptsPerStep = parse.GetValue(prompts),
                    Temperature = parse.GetValue(temperature), TopP = parse.GetValue(topP), MaxNewTokens = parse.GetValue(maxNew),
                    RolloutBatch = parse.GetValue(rolloutBatch), UpdatesPerBatch = parse.GetValue(updates), MultiStrategy = parse.GetValue(multiStrategy),
                    KlReference = ParseKlReference(parse.GetValue(klReference)!),
                    LearningRate = parse.GetValue(lr), CheckpointEvery = parse.GetValue(checkpointEvery), Seed = parse.GetValue(seed),
                    Loss = new GrpoLossOptions
                    {
                        Beta = parse.GetValue(beta), Kl = ParseKl(parse.GetValue(kl)!), Aggregation = ParseAggregation(parse.GetValue(aggregation)!),
                        MaxCompletionLength = parse.GetValue(maxNew),
                    },
                },
            };
            var result = Run(settings, ProgressReporter.Create());
            if (parse.GetValue(json)) CommandKit.WriteSnakeJson(result);
            else
                Console.WriteLine($"{result.Advantage}, {result.Prompts} prompts, {result.Steps} steps in {result.Seconds:0.0} s: " +
                                  $"reward {result.FirstRewardMean:0.###} → {result.LastRewardMean:0.###}, accuracy {result.FirstAccuracy:0.###} → {result.LastAccuracy:0.###} " +
                                  $"(first/last {result.Window} steps)" + (result.Completed ? $" → {result.Adapter}" : " (interrupted; --resume continues)"));
            return result.Completed ? 0 : 1;
        });
        return cmd;
    }

    public static KlEstimator ParseKl(string name) => name.Trim().ToLowerInvariant() switch
    {
        "k1" => KlEstimator.K1,
        "k2" => KlEstimator.K2,
        "k3" => KlEstimator.K3,
        _ => throw new MmxException($"--kl: unknown estimator '{name}' (known: k1, k2, k3)"),
    };

    public static KlReference ParseKlReference(string name) => name.Trim().ToLowerInvariant() switch
    {
        "start" => KlReference.Start,
        "base" => KlReference.Base,
        _ => throw new MmxException($"--kl-reference: unknown reference '{name}' (known: start, base)"),
    };

    public static LossAggregation ParseAggregation(string name) => name.Trim().ToLowerInvariant() switch
    {
        "token-mean" => LossAggregation.TokenMean,
        "seq-mean-token-mean" => LossAggregation.SequenceMeanTokenMean,
        "seq-mean-token-sum" => LossAggregation.SequenceMeanTokenSum,
        "constant" or "drgrpo" => LossAggregation.ConstantNormalizer,
        _ => throw new MmxException($"--loss-aggregation: unknown mode '{name}' (known: token-mean, seq-mean-token-mean, seq-mean-token-sum, constant)"),
    };

    public static Estimator ParseEstimator(string name)
    {
        try { return EstimatorModule.parse(name); }
        catch (ArgumentException e) { throw new MmxException($"--advantage: {e.Message.Split(" (Parameter")[0]}"); }
    }

    /// <summary>Trains the adapter (the pipeline's GBA stage calls this too).</summary>
    public static GbaResult Run(GbaSettings s, ProgressReporter? progress = null)
    {
        var estimator = ParseEstimator(s.Advantage);
        if (s.Specialty != null && !Vocabulary.Specialties.Contains(s.Specialty))
            throw new MmxException($"--specialty: unknown specialty '{s.Specialty}' (known: {string.Join(", ", Vocabulary.Specialties)})");
        var spec = s.Spec is null ? DefaultSpec.load() : SpecJson.load(s.Spec);
        var encoder = ModelFolder.ChatEncoder(s.BaseDir);
        var (items, _, dataDir) = MedItemData.Load(s.Data, Vocabulary.Rl, s.Specialty);
        var samples = items.Select(i => new RlSample(MedItemSamples.Prompt(i, dataDir), MedItemSamples.Annotations(i))).ToList();

        const string name = "expert";
        using var loaded = ModelLoader.Load(new ModelReference(s.BaseDir, s.AdapterDir),
            new ModelLoadOptions { Compute = MixedPrecision.Parse(s.Dtype), AdapterName = name });
        var model = loaded.Model;
        var adapters = loaded.Lora!;
        var tokenizer = encoder.Tokenizer;
        var generator = new Qwen25VLGenerator(model, ids => tokenizer.Decode(ids));
        var options = s.Grpo with { OutputDir = s.OutDir, MetricsPath = s.MetricsPath };
        var clock = Stopwatch.StartNew();
        TrainingRun run;
        string metricsPath;
        using var client = s.RolloutEndpoint is null ? null : new OpenAiClient(s.RolloutEndpoint, new EndpointOptions { ApiKey = s.RolloutApiKey });
        var rollouts = client is null ? null : EndpointRollouts(s, client, adapters, name, encoder, generator);
        using (var trainer = new GrpoTrainer(generator, adapters, name, encoder, spec, estimator, samples, options, progress, rollouts))
        {
            run = trainer.Run(s.Resume);
            metricsPath = trainer.MetricsPath!;
        }
        string adapterOut = Path.Combine(s.OutDir, "adapter");
        if (run.Completed) adapters.Save(name, adapterOut);

        var lines = MetricsWriter.Read(metricsPath);
        int window = Math.Max(1, lines.Count / 4);
        double Mean(IEnumerable<JsonObject> xs, string key) => xs.Select(x => x[key] is JsonValue v && v.TryGetValue<double>(out var d) ? d : double.NaN).DefaultIfEmpty(double.NaN).Average();
        return new GbaResult(EstimatorModule.name(estimator), samples.Count, run.LastStep, run.Completed, Math.Round(clock.Elapsed.TotalSeconds, 2),
            adapterOut, metricsPath,
            Mean(lines.Take(window), "reward_mean"), Mean(lines.TakeLast(window), "reward_mean"),
            Mean(lines.Take(window), "accuracy"), Mean(lines.TakeLast(window), "accuracy"), window);
    }

    /// <summary>
    /// Rollouts from the endpoint: the adapter being trained is published under its LoRA name at each step start and
    /// requests ask for that name.
    /// </summary>
    static EndpointRollouts EndpointRollouts(GbaSettings s, OpenAiClient client, LoraAdapters adapters, string name, VisionChatEncoder encoder,
        Qwen25VLGenerator generator)
    {
        if (s.RolloutConcurrency < 1) throw new MmxException($"--rollout-concurrency: must be at least 1 (got {s.RolloutConcurrency})");
        string loraName = string.IsNullOrWhiteSpace(s.RolloutModel)
            ? Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(s.AdapterDir))) + "-rl"
            : s.RolloutModel;
        var publisher = new AdapterPublisher(client, adapters, name, Path.Combine(s.OutDir, "endpoint-adapter"), loraName);
        return new EndpointRollouts(client, loraName, encoder, generator, publisher, s.RolloutConcurrency);
    }
}
