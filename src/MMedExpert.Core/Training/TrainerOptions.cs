using System.Text.Json.Nodes;

namespace MMedExpert.Core.Training;

/// <summary>Settings of a <see cref="Trainer{TBatch}"/> run (AdamW, cosine schedule with warmup, clipping, checkpoints).</summary>
public sealed record TrainerOptions
{
    public double LearningRate { get; init; } = 1e-4;
    public double MinLearningRate { get; init; }
    public int WarmupSteps { get; init; }
    /// <summary>Optimizer steps of the whole run.</summary>
    public int TotalSteps { get; init; } = 100;
    /// <summary>Micro-batches per optimizer step.</summary>
    public int Accumulation { get; init; } = 1;
    /// <summary>Global gradient-norm limit; 0 or less: no clipping (the norm is still measured).</summary>
    public double ClipNorm { get; init; } = 1.0;
    public double WeightDecay { get; init; }
    public double Beta1 { get; init; } = 0.9;
    public double Beta2 { get; init; } = 0.999;
    public double Epsilon { get; init; } = 1e-8;
    public long Seed { get; init; }
    /// <summary>Checkpoint every N steps (and at the end); 0: only at the end. Needs a checkpoint folder (OutputDir or CheckpointDir).</summary>
    public int CheckpointEvery { get; init; }
    /// <summary>Folder for <c>checkpoint/</c> and <c>metrics.jsonl</c>; null: neither is written (unless set below).</summary>
    public string? OutputDir { get; init; }
    /// <summary>Where the checkpoint folder goes (default OutputDir/checkpoint).</summary>
    public string? CheckpointDir { get; init; }
    /// <summary>Where the metrics go (default OutputDir/metrics.jsonl; the run layout uses metrics/dsa-&lt;specialty&gt;.jsonl).</summary>
    public string? MetricsPath { get; init; }
    public string Description { get; init; } = "train";

    public CosineSchedule Schedule => new(LearningRate, WarmupSteps, TotalSteps, MinLearningRate);

    public void Validate()
    {
        if (TotalSteps <= 0) throw new TrainingException($"total steps must be positive (got {TotalSteps})");
        if (WarmupSteps < 0 || WarmupSteps > TotalSteps) throw new TrainingException($"warmup steps must be in [0, {TotalSteps}] (got {WarmupSteps})");
        if (Accumulation <= 0) throw new TrainingException($"gradient accumulation must be positive (got {Accumulation})");
        if (!(LearningRate > 0)) throw new TrainingException($"learning rate must be positive (got {LearningRate})");
        if (CheckpointEvery < 0) throw new TrainingException($"checkpoint interval must be non-negative (got {CheckpointEvery})");
    }

    /// <summary>The settings a resumed run must share with the interrupted one (everything that changes the curve).</summary>
    public JsonObject ResumeKey() => new()
    {
        ["lr"] = LearningRate,
        ["min_lr"] = MinLearningRate,
        ["warmup_steps"] = WarmupSteps,
        ["total_steps"] = TotalSteps,
        ["accumulation"] = Accumulation,
        ["clip_norm"] = ClipNorm,
        ["weight_decay"] = WeightDecay,
        ["beta1"] = Beta1,
        ["beta2"] = Beta2,
        ["eps"] = Epsilon,
        ["seed"] = Seed,
    };
}
