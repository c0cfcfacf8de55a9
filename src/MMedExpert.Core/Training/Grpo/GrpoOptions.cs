namespace MMedExpert.Core.Training.Grpo;

/// <summary>Settings of a GRPO/GBA run (rollouts, advantages, loss, optimiser, bookkeeping).</summary>
public sealed record GrpoOptions
{
    public int Steps { get; init; } = 20;
    public int PromptsPerStep { get; init; } = 4;
    /// <summary>G: completions sampled per prompt.</summary>
    public int GroupSize { get; init; } = 8;
    public double Temperature { get; init; } = 1.0;
    public double TopP { get; init; } = 1.0;
    public int MaxNewTokens { get; init; } = 128;
    /// <summary>Sequences generated or scored in one forward batch (bounds memory).</summary>
    public int RolloutBatch { get; init; } = 32;
    /// <summary>μ: policy updates per rollout batch (μ = 1 is on-policy: the importance ratio is exactly 1).</summary>
    public int UpdatesPerBatch { get; init; } = 1;
    /// <summary>Estimator name for Algebra's Estimator.parse: gba, grpo, drgrpo, rloo, reinforce++, multireward.</summary>
    public string Advantage { get; init; } = "gba";
    /// <summary>Split each group across the spec's guideline prompts (GBA's multi-strategy rollouts).</summary>
    public bool MultiStrategy { get; init; }
    public GrpoLossOptions Loss { get; init; } = new();
    /// <summary>The policy the KL penalty pulls toward (used when Loss.Beta ≠ 0).</summary>
    public KlReference KlReference { get; init; } = KlReference.Start;
    public double LearningRate { get; init; } = 1e-4;
    public int WarmupSteps { get; init; }
    public double ClipNorm { get; init; } = 1.0;
    public long Seed { get; init; }
    public int CheckpointEvery { get; init; } = 5;
    /// <summary>Folder for <c>checkpoint/</c> and <c>metrics.jsonl</c>; null: neither is written (unless set below).</summary>
    public string? OutputDir { get; init; }
    /// <summary>Where the checkpoint folder goes (default OutputDir/checkpoint).</summary>
    public string? CheckpointDir { get; init; }
    /// <summary>Where the metrics go (default OutputDir/metrics.jsonl).</summary>
    public string? MetricsPath { get; init; }
}

/// <summary>
/// The KL reference policy. <see cref="Start"/> (GRPO's choice: DeepSeekMath's reference is the initial policy) is the adapter as RL found it, the SFT
/// expert; <see cref="Base"/> is the model with adapters off, which pulls an expert back toward the pre-DSA base.
/// </summary>
public enum KlReference { Start, Base }
