using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using MMedExpert.Algebra.Advantages;
using MMedExpert.Algebra.Rewards;
using MMedExpert.Core.Lora;
using MMedExpert.Core.Model.Generation;
using MMedExpert.Core.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MMedExpert.Core.Training.Grpo;

/// <summary>
/// GRPO-style reinforcement learning of one LoRA adapter: each step samples G completions for each of P prompts,
/// scores them with a guideline reward spec (one reward per perspective), turns rewards into advantages with an
/// estimator from the Algebra library (GBA by default), and takes μ clipped policy-gradient steps with a KL penalty to
/// the reference policy. By default that is the policy RL starts from: the trainer snapshots the adapter when it is
/// created (a frozen LoRA copy, not a second copy of the model), so a resumed run keeps the same reference.
/// <see cref="KlReference.Base"/> uses the model with its adapters off instead. Completions come from an
/// <see cref="IRolloutSource"/>: the trainer's own model by default (<see cref="LocalRollouts"/>), or a server.
/// </summary>
public sealed class GrpoTrainer : IDisposable
{
    readonly Qwen25VLGenerator generator;
    readonly LoraAdapters lora;
    readonly string adapter;
    readonly VisionChatEncoder encoder;
    readonly GuidelineSpec spec;
    readonly Estimator estimator;
    readonly IReadOnlyList<RlSample> samples;
    readonly GrpoOptions o;
    readonly IReadOnlyList<Parameter> parameters;
    readonly ProgressReporter progress;
    readonly string[] perspectives;
    /// <summary>The frozen snapshot of the starting adapter; null when the reference is the base or β = 0.</summary>
    readonly string? referenceAdapter;
    readonly IRolloutSource rollouts;

    public AdamW Optimizer { get; }
    public string? CheckpointDir => o.CheckpointDir ?? (o.OutputDir is null ? null : Path.Combine(o.OutputDir, "checkpoint"));
    public string? MetricsPath => o.MetricsPath ?? (o.OutputDir is null ? null : Path.Combine(o.OutputDir, "metrics.jsonl"));

    public GrpoTrainer(Qwen25VLGenerator generator, LoraAdapters lora, string adapter, VisionChatEncoder encoder,
        GuidelineSpec spec, Estimator estimator, IReadOnlyList<RlSample> samples, GrpoOptions options, ProgressReporter? progress = null,
        IRolloutSource? rollouts = null)
    {
        if (samples.Count == 0) throw new TrainingException("no RL samples");
        if (options.GroupSize < 1 || options.PromptsPerStep < 1 || options.UpdatesPerBatch < 1)
            throw new TrainingException("group size, prompts per step and updates per batch must be at least 1");
        this.generator = generator;
        this.lora = lora;
        this.adapter = adapter;
        this.encoder = encoder;
        this.spec = spec;
        this.estimator = estimator;
        this.samples = samples;
        o = options;
        this.progress = progress ?? ProgressReporter.None;
        // Default: today's rollouts from the trainer's own model (an endpoint source samples elsewhere).
        this.rollouts = rollouts ?? new LocalRollouts(generator, encoder);
        perspectives = GuidelineSpecModule.perspectiveNames(spec);
        if (o.Loss.Beta != 0 && o.KlReference == KlReference.Start)
        {
            referenceAdapter = adapter + "-kl-reference";
            lora.Copy(adapter, referenceAdapter);
        }
        lora.SetActive(adapter);
        parameters = lora.TrainableParameters(adapter);
        Optimizer = optim.AdamW(parameters, o.LearningRate, 0.9, 0.999, 1e-8, 0.0);
    }

    /// <summary>One rollout: a prompt's sample, the strategy it was sampled with, and what came out.</summary>
    sealed record Rollout(int Group, int Strategy, VisionChatSample Prompt, GeneratedSequence Output);

    /// <summary>
    /// Runs to the last step; with <paramref name="resume"/> continues from the checkpoint in the output folder (metrics
    /// after its step are dropped and rewritten). Cancelling stops after the current step and checkpoints it.
    /// </summary>
    public TrainingRun Run(bool resume = false, CancellationToken cancel = default)
    {
        long done = 0;
        var state = lora.State(adapter);
        var key = ResumeKey();
        if (resume && CheckpointDir is { } dir && TrainingCheckpoint.Exists(dir))
        {
            var saved = TrainingCheckpoint.ReadState(dir);
            TrainingCheckpoint.RequireSameOptions(saved.Options, key, Path.Combine(dir, TrainingCheckpoint.StateFile));
            TrainingCheckpoint.Load(dir, state, Optimizer);
            done = saved.Step;
        }
        using var metrics = MetricsPath is null ? null : done > 0 ? MetricsWriter.Resume(MetricsPath, done) : MetricsWriter.Create(MetricsPath);
        var schedule = new CosineSchedule(o.LearningRate, o.WarmupSteps, o.Steps);
        var losses = new List<double>();
        long first = done + 1, last = done, lastSaved = done;
        void Save(long step) =>
            TrainingCheckpoint.Save(CheckpointDir!, new TrainingState(step, step * o.PromptsPerStep, step, o.Seed, key), state, Optimizer);
        progress.Run($"rl {adapter} ({EstimatorModule.name(estimator)})", o.Steps, done, report =>
        {
            for (long step = first; step <= o.Steps; step++)
            {
                if (cancel.IsCancellationRequested) break;
                var fields = Step(step, schedule.At(step));
                losses.Add((double)fields["loss"]!);
                metrics?.Write(fields);
                last = step;
                if (CheckpointDir != null && (step == o.Steps || (o.CheckpointEvery > 0 && step % o.CheckpointEvery == 0)))
                {
                    Save(step);
                    lastSaved = step;
                }
                report(step, string.Create(CultureInfo.InvariantCulture, $"reward {(double)fields["reward_mean"]!:0.###} acc {(double)fields["accuracy"]!:0.##}"));
            }
        });
        if (last > lastSaved && CheckpointDir != null) Save(last);
        return new TrainingRun(first, last, losses, last == o.Steps);
    }

    /// <summary>One GRPO step; returns the metrics line of the step.</summary>
    public Dictionary<string, object?> Step(long step, double learningRate)
    {
        long seed = Seeds.Derive(o.Seed, step);
        generator.Model.eval();
        var generation = Stopwatch.StartNew();
        this.rollouts.BeginStep(step);
        var rollouts = Sample(step, seed);
        generation.Stop();

        // Rewards per perspective and advantages, from the Algebra library.
        var groups = new List<RolloutGroup>();
        var rewardSums = new double[perspectives.Length];
        double weighted = 0, correct = 0, formatted = 0;
        foreach (var g in rollouts.GroupBy(r => r.Group).OrderBy(g => g.Key))
        {
            var a = samples[SampleIndex(step, g.Key)].Annotations;
            var completions = g.Select(r => Completion.OfTokens(r.Output.Text, r.Output.TokenIds.Count)).ToArray();
            var (group, _) = GuidelineRewards.rolloutGroup(spec, a, completions, g.Select(r => r.Strategy).ToArray());
            groups.Add(group);
            foreach (var c in completions)
            {
                correct += CheckModule.evaluate(Check.NewAnswer(false), a, c).Score >= 1 ? 1 : 0;
                formatted += CheckModule.evaluate(Check.Format, a, c).Score >= 1 ? 1 : 0;
            }
            var scalar = EstimatorModule.scalarRewards(group);
            weighted += scalar.Sum();
            for (int i = 0; i < group.Rewards.GetLength(0); i++)
                for (int p = 0; p < perspectives.Length; p++) rewardSums[p] += group.Rewards[i, p];
        }
        var advantages = EstimatorModule.apply(estimator, groups.ToArray()).SelectMany(x => x).Select(x => (float)x).ToArray();
        int n = rollouts.Count;

        var learning = Stopwatch.StartNew();
        var update = Learn(rollouts.Select(r => new RolloutForUpdate(r.Prompt, r.Output.TokenIds, r.Output.LogProbs.ToArray())).ToList(),
            advantages, learningRate);
        learning.Stop();
        var rolloutLogProbs = rollouts.Select(r => r.Output.LogProbs).ToList();

        var lengths = rollouts.Select(r => (double)r.Output.TokenIds.Count).ToArray();
        double tokens = lengths.Sum();
        var fields = new Dictionary<string, object?>
        {
            ["step"] = step,
            ["reward_mean"] = weighted / n,
            ["accuracy"] = correct / n,
            ["format_rate"] = formatted / n,
            ["advantage_mean"] = advantages.Average(),
            ["advantage_std"] = Std(advantages),
            ["kl"] = update.Kl,
            ["clip_fraction"] = update.ClipFraction,
            // Monte-Carlo estimate of the policy's entropy: mean −log π of the sampled tokens.
            ["entropy"] = tokens == 0 ? 0 : -rolloutLogProbs.Sum(l => l.Sum()) / tokens,
            ["response_length"] = lengths.Average(),
            ["loss"] = update.Loss,
            ["grad_norm"] = update.GradNorm,
            ["lr"] = learningRate,
            ["generation_s"] = generation.Elapsed.TotalSeconds,
            ["learning_s"] = learning.Elapsed.TotalSeconds,
            ["rollout_tokens_per_s"] = generation.Elapsed.TotalSeconds > 0 ? tokens / generation.Elapsed.TotalSeconds : 0,
        };
        for (int p = 0; p < perspectives.Length; p++) fields["reward_" + perspectives[p]] = rewardSums[p] / n;
        foreach (var (key, value) in this.rollouts.StepMetrics()) fields[key] = value;
        return fields;
    }

    /// <summary>A completion to learn from: its prompt, its tokens and their log-probabilities under the rollout policy.</summary>
    public sealed record RolloutForUpdate(VisionChatSample Prompt, IReadOnlyList<int> Completion, float[] RolloutLogProbs);

    /// <summary>What one round of policy updates reports (means over the μ updates).</summary>
    public sealed record UpdateStats(double Loss, double ClipFraction, double Kl, double GradNorm);

    /// <summary>
    /// The learning half of a step: μ clipped policy-gradient updates of the adapter on given completions and their
    /// advantages (one per completion). Public so that offline rollouts or a researcher's own advantages can be used.
    /// </summary>
    public UpdateStats Learn(IReadOnlyList<RolloutForUpdate> rollouts, IReadOnlyList<float> advantages, double learningRate)
    {
        int n = rollouts.Count;
        if (advantages.Count != n) throw new ArgumentException($"{advantages.Count} advantages for {n} completions");
        if (n == 0) throw new ArgumentException("no completions to learn from");
        // Dropout off: the policy being trained is then exactly the one that sampled (ρ = 1 on the first update) and a
        // resumed run recomputes the same log-probabilities.
        generator.Model.eval();
        lora.SetActive(adapter);
        var completions = rollouts.Select(r => r.Completion).ToList();
        var referenceLogProbs = o.Loss.Beta != 0 ? ReferenceLogProbs(rollouts.Select(r => r.Prompt).ToList(), completions) : null;

        double lossSum = 0, clipSum = 0, klSum = 0, normSum = 0;
        foreach (var g in Optimizer.ParamGroups) g.LearningRate = learningRate;
        for (int u = 0; u < o.UpdatesPerBatch; u++)
        {
            Optimizer.zero_grad();
            for (int start = 0; start < n; start += o.RolloutBatch)
            {
                using var scope = NewDisposeScope();
                int count = Math.Min(o.RolloutBatch, n - start);
                var chunk = Enumerable.Range(start, count).ToList();
                var (prompts, promptOf) = SharedPrompts(chunk.Select(i => rollouts[i].Prompt));
                var (logProbs, mask) = generator.SharedPromptLogProbs(prompts, promptOf, chunk.Select(i => completions[i]).ToList());
                // With μ = 1 the policy is the rollout policy: ρ = 1 exactly, without trusting two computations to agree.
                var old = o.UpdatesPerBatch == 1 ? logProbs.detach() : RightAligned(chunk.Select(i => rollouts[i].RolloutLogProbs).ToList(), logProbs.shape[1]);
                var reference = referenceLogProbs is null ? null : RightAligned(chunk.Select(i => referenceLogProbs[i]).ToList(), logProbs.shape[1]);
                var adv = tensor(chunk.Select(i => advantages[i]).ToArray());
                var result = GrpoLoss.Compute(logProbs, old, reference, adv, mask, o.Loss);
                // Chunks are weighted by their share of the batch so the gradient equals the whole batch's.
                (result.Loss * ((double)count / n)).backward();
                lossSum += result.Loss.item<float>() * count / n;
                clipSum += result.ClipFraction * count / n;
                klSum += result.KlMean * count / n;
            }
            normSum += GradientClipping.ClipGlobalNorm(parameters, o.ClipNorm);
            Optimizer.step();
        }
        int updates = o.UpdatesPerBatch;
        return new UpdateStats(lossSum / updates, clipSum / updates, klSum / updates, normSum / updates);
    }

    int SampleIndex(long step, int group)
    {
        // Deterministic in (seed, step): a resumed run sees the same prompts.
        long position = (step - 1) * o.PromptsPerStep + group;
        return EpochOrder(position / samples.Count)[(int)(position % samples.Count)];
    }

    readonly Dictionary<long, int[]> epochOrders = new();

    /// <summary>A seeded shuffle of the samples for each pass over them.</summary>
    int[] EpochOrder(long epoch)
    {
        if (epochOrders.TryGetValue(epoch, out var order)) return order;
        order = Enumerable.Range(0, samples.Count).ToArray();
        new SplitMix64(Seeds.Derive(o.Seed, $"rl-epoch-{epoch}")).Shuffle(order);
        return epochOrders[epoch] = order;
    }

    List<Rollout> Sample(long step, long seed)
    {
        var wanted = new List<(int Group, int Strategy, VisionChatSample Prompt)>();
        for (int g = 0; g < o.PromptsPerStep; g++)
        {
            var sample = samples[SampleIndex(step, g)].Prompt;
            for (int i = 0; i < o.GroupSize; i++)
            {
                // Multi-strategy rollouts: completion i follows guideline prompt i mod S as its system prompt.
                int strategy = o.MultiStrategy ? i % perspectives.Length : 0;
                var prompt = o.MultiStrategy ? sample with { SystemPrompt = spec.Perspectives[strategy].Prompt } : sample;
                wanted.Add((g, strategy, prompt));
            }
        }
        var rollouts = new List<Rollout>();
        using var noGrad = no_grad();
        for (int start = 0; start < wanted.Count; start += o.RolloutBatch)
        {
            var chunk = wanted.Skip(start).Take(o.RolloutBatch).ToList();
            // Each distinct prompt is sampled from once for all of its group's completions.
            var (prompts, promptOf) = DistinctPrompts(chunk.Select(c => c.Prompt));
            var outputs = this.rollouts.Sample(prompts, promptOf, new GenerationOptions
            {
                MaxNewTokens = o.MaxNewTokens, Temperature = o.Temperature, TopP = o.TopP, Seed = seed + start,
                StopTokenIds = encoder.StopTokenIds, SuppressTokenIds = encoder.SuppressTokenIds,
            });
            if (outputs.Count != chunk.Count)
                throw new TrainingException($"the rollout source returned {outputs.Count} completions for {chunk.Count} requested");
            for (int i = 0; i < chunk.Count; i++) rollouts.Add(new Rollout(chunk[i].Group, chunk[i].Strategy, chunk[i].Prompt, outputs[i]));
        }
        return rollouts;
    }

    /// <summary>Log-probabilities of the sampled tokens under the reference policy (the starting snapshot, or no adapter).</summary>
    List<float[]> ReferenceLogProbs(List<VisionChatSample> prompts, List<IReadOnlyList<int>> completions)
    {
        var result = new List<float[]>();
        if (referenceAdapter is null) lora.SetActive();
        else lora.SetActive(referenceAdapter);
        try
        {
            for (int start = 0; start < prompts.Count; start += o.RolloutBatch)
            {
                using var scope = NewDisposeScope();
                using var noGrad = no_grad();
                int count = Math.Min(o.RolloutBatch, prompts.Count - start);
                var (batch, promptOf) = SharedPrompts(prompts.Skip(start).Take(count));
                var chunk = completions.Skip(start).Take(count).ToList();
                var (lp, _) = generator.SharedPromptLogProbs(batch, promptOf, chunk);
                float[] flat = lp.cpu().contiguous().data<float>().ToArray();
                long width = lp.shape[1];
                // Right-aligned rows: completion b's values are its last |completion b| columns.
                result.AddRange(chunk.Select((c, b) => flat.Skip((int)(b * width + width - c.Count)).Take(c.Count).ToArray()));
            }
        }
        finally { lora.SetActive(adapter); }
        return result;
    }

    /// <summary>
    /// The distinct prompts of a list of rollouts (a group's G completions share one; with multi-strategy rollouts, one
    /// per guideline prompt) and each rollout's index among them, so each prompt is encoded once per pass.
    /// </summary>
    (PromptBatch Prompts, int[] PromptOf) SharedPrompts(IEnumerable<VisionChatSample> prompts)
    {
        var (distinct, promptOf) = DistinctPrompts(prompts);
        return (encoder.Prompts(distinct), promptOf);
    }

    /// <summary>The distinct prompts of a list of rollouts, in order of first appearance, and each rollout's index among them.</summary>
    public static (IReadOnlyList<VisionChatSample> Distinct, int[] PromptOf) DistinctPrompts(IEnumerable<VisionChatSample> prompts)
    {
        var distinct = new List<VisionChatSample>();
        var indexOf = new Dictionary<VisionChatSample, int>();
        var promptOf = new List<int>();
        foreach (var p in prompts)
        {
            if (!indexOf.TryGetValue(p, out int k))
            {
                k = distinct.Count;
                indexOf[p] = k;
                distinct.Add(p);
            }
            promptOf.Add(k);
        }
        return (distinct, promptOf.ToArray());
    }

    /// <summary>Per-sample value lists as the [batch, width] right-aligned layout of CompletionLogProbs.</summary>
    static Tensor RightAligned(IReadOnlyList<float[]> rows, long width)
    {
        var data = new float[rows.Count * width];
        for (int b = 0; b < rows.Count; b++)
            Array.Copy(rows[b], 0, data, b * width + width - rows[b].Length, rows[b].Length);
        return tensor(data, new long[] { rows.Count, width });
    }

    static double Std(float[] xs)
    {
        double mean = xs.Average();
        return Math.Sqrt(xs.Sum(x => (x - mean) * (x - mean)) / Math.Max(1, xs.Length));
    }

    /// <summary>The settings a resumed run must share with the interrupted one (everything that changes the curve).</summary>
    JsonObject ResumeKey() => new()
    {
        ["adapter"] = adapter, ["advantage"] = EstimatorModule.name(estimator), ["spec"] = spec.Name, ["samples"] = samples.Count,
        ["steps"] = o.Steps, ["prompts_per_step"] = o.PromptsPerStep, ["group_size"] = o.GroupSize, ["temperature"] = o.Temperature,
        ["top_p"] = o.TopP, ["max_new_tokens"] = o.MaxNewTokens, ["rollout_batch"] = o.RolloutBatch, ["updates"] = o.UpdatesPerBatch,
        ["multi_strategy"] = o.MultiStrategy, ["lr"] = o.LearningRate, ["warmup_steps"] = o.WarmupSteps, ["clip_norm"] = o.ClipNorm,
        ["seed"] = o.Seed, ["beta"] = o.Loss.Beta, ["kl"] = o.Loss.Kl.ToString(), ["clip_low"] = o.Loss.ClipLow,
        ["clip_high"] = o.Loss.ClipHigh, ["aggregation"] = o.Loss.Aggregation.ToString(), ["kl_reference"] = o.KlReference.ToString(),
    };

    public void Dispose()
    {
        Optimizer.Dispose();
        if (referenceAdapter is not null && lora.Contains(referenceAdapter)) lora.Remove(referenceAdapter);
    }
}
