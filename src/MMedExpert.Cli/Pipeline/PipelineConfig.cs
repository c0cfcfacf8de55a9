using System.Text.Json;
using System.Text.Json.Serialization;

namespace MMedExpert.Cli.Pipeline;

/// <summary>
/// Everything a pipeline run depends on, seeds included; written to <c>runs/NAME/config.json</c>. The defaults are the
/// embedded run (MedSynth + the <c>small</c> preset on 2 CPU cores); <c>--config FILE</c> overrides any field, e.g. to
/// point <see cref="BaseConfig.Checkpoint"/> at a real Qwen2.5-VL checkpoint and <see cref="DataConfig.Path"/> at real data.
/// </summary>
public sealed record PipelineConfig
{
    public string Name { get; init; } = "default";
    public long Seed { get; init; } = 20260101;
    /// <summary>
    /// Experts trained, RL runs and models evaluated at once in the dsa, rl and eval stages, each on threads/jobs torch
    /// threads (<see cref="ExpertJobs"/>). 2 halves the embedded run's time on 2 cores, but one thread per job changes the
    /// last bits of the thread-sensitive inits (PiSSA's SVD), hence the figures; 1 keeps the committed default run's.
    /// </summary>
    public int Jobs { get; init; } = 1;
    public DataConfig Data { get; init; } = new();
    public BaseConfig Base { get; init; } = new();
    public DsaConfig Dsa { get; init; } = new();
    public GbaConfig Gba { get; init; } = new();
    public MergeConfig Merge { get; init; } = new();
    public EvalConfig Eval { get; init; } = new();

    public static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow, // an unknown key is an error, not a silent default
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
    };

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    /// <summary>Values the stages would only reject after the earlier stages' work (minutes in): checked at load.</summary>
    public void Validate(string path)
    {
        if (Jobs < 1) throw new PipelineException($"{path}: jobs {Jobs}: at least 1");
        if (Eval.Split is not ("test" or "val")) throw new PipelineException($"{path}: eval.split '{Eval.Split}': expected test or val");
    }

    public static PipelineConfig Load(string path)
    {
        if (!File.Exists(path)) throw new PipelineException($"{path}: config file not found");
        try
        {
            var config = JsonSerializer.Deserialize<PipelineConfig>(File.ReadAllText(path), Json)
                         ?? throw new PipelineException($"{path}: empty config");
            config.Validate(path);
            return config;
        }
        catch (JsonException e)
        {
            throw new PipelineException($"{path}: {e.Message}");
        }
    }
}

public sealed record DataConfig
{
    /// <summary>A folder of MMedExpert JSONL splits to use instead of generating MedSynth.</summary>
    public string? Path { get; init; }
    public int Items { get; init; } = 10_000;
    public double Difficulty { get; init; } = 0.0;
    public int ImageSize { get; init; } = 112;
    /// <summary>MedSynth states the two image findings in a one-line report (see docs/data.md, "Knobs").</summary>
    public bool ImagingReport { get; init; }
    /// <summary>Reasoning traces the models are fine-tuned to write (compact keeps CPU runs short).</summary>
    public MMedExpert.Data.Schema.TraceStyle Trace { get; init; } = MMedExpert.Data.Schema.TraceStyle.Compact;
}

public sealed record BaseConfig
{
    /// <summary>A Qwen2.5-VL checkpoint folder (HF layout); when null, <see cref="Source"/> says which base the run uses.</summary>
    public string? Checkpoint { get; init; }
    /// <summary>
    /// Without a checkpoint: <c>shipped</c>, the pretrained embedded base in models/medsynth-base (its SHA-256 checked
    /// against its provenance), or <c>scratch</c>, a <see cref="Preset"/> model built, warmed up and pretrained briefly here.
    /// </summary>
    public string Source { get; init; } = Shipped;
    public const string Shipped = "shipped", Scratch = "scratch";
    public string Preset { get; init; } = "small";
    /// <summary>A tokenizer.json to use; when null the pipeline trains its own on the data's text.</summary>
    public string? Tokenizer { get; init; }
    public int TokenizerVocab { get; init; } = 2000;
    /// <summary>Steps of the supervised vision warm-up before pretraining (0 = none; MedSynth data only, see BaseStage).</summary>
    public int VisionWarmupSteps { get; init; } = 300;
    public int VisionWarmupBatchSize { get; init; } = 32;
    public double VisionWarmupLearningRate { get; init; } = 1e-3;
    /// <summary>Keep the warmed-up tower fixed while the language model learns to read it.</summary>
    public bool FreezeWarmedVision { get; init; } = true;
    public int PretrainSteps { get; init; } = 150;
    public int BatchSize { get; init; } = 8;
    public double LearningRate { get; init; } = 2e-3;
    public string Dtype { get; init; } = "fp32";
    /// <summary>
    /// Matmul precision of training, rollouts and evaluation (mixed precision: weights and optimizer state stay in
    /// <see cref="Dtype"/>): bf16 is 1.6× faster per training step on the build machine (docs/benchmarks.md).
    /// </summary>
    public string ComputeDtype { get; init; } = "bf16";
}

public sealed record DsaConfig
{
    public string[] Specialties { get; init; } = { "adult_medicine", "pediatrics", "brain_senses", "oncology_surgery" };
    /// <summary>One initialization per specialty, in order (DSA's diverse starting points).</summary>
    public string[] Inits { get; init; } = { "gaussian", "pissa", "olora", "kaiming" };
    public int Rank { get; init; } = 8;
    public double Alpha { get; init; } = 16;
    public int Steps { get; init; } = 150;
    public int BatchSize { get; init; } = 8;
    public double LearningRate { get; init; } = 2e-3;
}

public sealed record GbaConfig
{
    public int Steps { get; init; } = 8;
    public int PromptsPerStep { get; init; } = 4;
    public int GroupSize { get; init; } = 8;
    public double Temperature { get; init; } = 1.0;
    public double TopP { get; init; } = 1.0;
    public int MaxNewTokens { get; init; } = 64;
    public double LearningRate { get; init; } = 5e-4;
    public double Beta { get; init; } = 0.02;
    /// <summary>The KL reference: start (the DSA expert RL begins from) or base (adapters off).</summary>
    public MMedExpert.Core.Training.Grpo.KlReference KlReference { get; init; } = MMedExpert.Core.Training.Grpo.KlReference.Start;
    /// <summary>The guideline reward spec (JSON); null = the embedded default.</summary>
    public string? Spec { get; init; }
    /// <summary>Advantage estimators to train with: the first is the method, the rest are ablations.</summary>
    public string[] Advantages { get; init; } = { "gba", "grpo" };
    /// <summary>
    /// RL seeds per advantage (paired: every advantage gets the same seeds). Seed 0's experts are experts/&lt;specialty&gt;/&lt;advantage&gt;;
    /// seed k's are &lt;advantage&gt;-seed&lt;k&gt;, merged by the main method and evaluated merged, for the comparison over seeds.
    /// </summary>
    public int Seeds { get; init; } = 3;
}

public sealed record MergeConfig
{
    /// <summary>The first is the method; the rest are ablations.</summary>
    public string[] Methods { get; init; } = { "conflict_aware", "ties", "task_arithmetic" };
    public double Density { get; init; } = 0.5;
    public double Lambda { get; init; } = 1.0;
}

public sealed record EvalConfig
{
    /// <summary>
    /// The split every model is scored on: <c>test</c> for the reported run, <c>val</c> to choose a configuration
    /// (steps, temperature) without looking at test.
    /// </summary>
    public string Split { get; init; } = "test";
    /// <summary>Test items evaluated per model (0 = all), after <see cref="PerSpecialty"/>.</summary>
    public int MaxItems { get; init; } = 0;
    /// <summary>The first N test items of each specialty (0 = no cap): enough per specialty for the intervals to separate.</summary>
    public int PerSpecialty { get; init; } = 100;
    public int BatchSize { get; init; } = 32;
    public int MaxNewTokens { get; init; } = 64;
    public int BootstrapResamples { get; init; } = 1000;
}
