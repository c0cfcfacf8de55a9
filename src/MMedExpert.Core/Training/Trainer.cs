using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using MMedExpert.Core.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MMedExpert.Core.Training;

/// <summary>What a <see cref="Trainer{TBatch}.Run"/> call did.</summary>
/// <param name="FirstStep">The first step run by this call (1 for a fresh run, checkpoint step + 1 when resumed).</param>
/// <param name="LastStep">The last step completed.</param>
/// <param name="Losses">Mean loss of each step run by this call.</param>
/// <param name="Completed">True when the last step of the run was reached (false when cancelled).</param>
public sealed record TrainingRun(long FirstStep, long LastStep, IReadOnlyList<double> Losses, bool Completed);

/// <summary>
/// A model-agnostic training loop shared by SFT and RL: AdamW over the given parameters, cosine schedule with warmup,
/// gradient accumulation, global-norm clipping, JSON-lines metrics, progress, atomic checkpoints and exact resume.
/// <para>
/// Exact resume: step s draws its randomness from <see cref="StepRandom"/> (LoRA dropout) and from torch's default
/// generator, both seeded with <c>Seeds.Derive(seed, s)</c> at the start of the step, and reads micro-batches
/// <c>batchAt((s−1)·accumulation + m)</c>, so nothing depends on what ran before except the tensors and optimizer state the checkpoint restores. The loss function must take its randomness from there (or from
/// the batch) and put the model in the mode it needs (train() for dropout). (The default generator is process-wide:
/// code drawing from it on another thread at the same time would shift it; StepRandom is per thread.)
/// </para>
/// </summary>
public sealed class Trainer<TBatch> : IDisposable
{
    readonly TrainerOptions options;
    readonly IReadOnlyList<Parameter> parameters;
    readonly IReadOnlyList<(string Name, Tensor Tensor)> state;
    readonly Func<long, TBatch> batchAt;
    readonly Func<TBatch, Tensor> loss;
    readonly Func<TBatch, long>? tokensOf;
    readonly ProgressReporter progress;

    public AdamW Optimizer { get; }
    public string? CheckpointDir => options.CheckpointDir ?? (options.OutputDir is null ? null : Path.Combine(options.OutputDir, "checkpoint"));
    public string? MetricsPath => options.MetricsPath ?? (options.OutputDir is null ? null : Path.Combine(options.OutputDir, "metrics.jsonl"));

    /// <param name="parameters">What the optimizer updates (e.g. one LoRA adapter's A and B).</param>
    /// <param name="batchAt">Micro-batch by global index (a pure function of the index, e.g. via <see cref="LengthBucketing"/>).</param>
    /// <param name="loss">Scalar loss of a micro-batch.</param>
    /// <param name="state">Tensors a checkpoint saves and restores (default: the parameters, named param.0, param.1, ...).
    /// Include frozen tensors that must come back bit for bit (e.g. LoraAdapters.State).</param>
    /// <param name="tokensOf">Tokens in a micro-batch, for tokens/s.</param>
    public Trainer(TrainerOptions options, IReadOnlyList<Parameter> parameters, Func<long, TBatch> batchAt, Func<TBatch, Tensor> loss,
                   IReadOnlyList<(string Name, Tensor Tensor)>? state = null, Func<TBatch, long>? tokensOf = null,
                   ProgressReporter? progress = null)
    {
        options.Validate();
        if (parameters.Count == 0) throw new TrainingException("no parameters to train");
        foreach (var p in parameters)
            if (!p.requires_grad) throw new TrainingException("a parameter given to the trainer does not require grad");
        this.options = options;
        this.parameters = parameters;
        this.state = state ?? parameters.Select((p, i) => ($"param.{i}", (Tensor)p)).ToList();
        this.batchAt = batchAt;
        this.loss = loss;
        this.tokensOf = tokensOf;
        this.progress = progress ?? ProgressReporter.None;
        Optimizer = optim.AdamW(parameters, options.LearningRate, options.Beta1, options.Beta2, options.Epsilon, options.WeightDecay);
    }

    /// <summary>
    /// Runs to the last step. With <paramref name="resume"/> and a checkpoint in the output folder, continues from it
    /// (metrics after its step are dropped and rewritten); otherwise starts at step 1. Cancelling stops after the
    /// current step and checkpoints it.
    /// </summary>
    public TrainingRun Run(bool resume = false, CancellationToken cancel = default)
    {
        long done = 0;
        var key = options.ResumeKey();
        if (resume && CheckpointDir is { } dir && TrainingCheckpoint.Exists(dir))
        {
            var saved = TrainingCheckpoint.ReadState(dir);
            TrainingCheckpoint.RequireSameOptions(saved.Options, key, Path.Combine(dir, TrainingCheckpoint.StateFile));
            TrainingCheckpoint.Load(dir, state, Optimizer);
            done = saved.Step;
            if (saved.DataPosition != done * options.Accumulation)
                throw new TrainingException($"{Path.Combine(dir, TrainingCheckpoint.StateFile)}: data_position {saved.DataPosition} does not match step {done} × accumulation {options.Accumulation}");
        }
        using var metrics = MetricsPath is null ? null : done > 0 ? MetricsWriter.Resume(MetricsPath, done) : MetricsWriter.Create(MetricsPath);
        var losses = new List<double>();
        long first = done + 1, last = done, lastSaved = done;
        var schedule = options.Schedule;
        progress.Run(options.Description, options.TotalSteps, done, report =>
        {
            for (long s = first; s <= options.TotalSteps; s++)
            {
                if (cancel.IsCancellationRequested) break;
                var clock = Stopwatch.StartNew();
                long stepSeed = Seeds.Derive(options.Seed, s);
                random.manual_seed(stepSeed);
                using var stepRandom = StepRandom.Begin(stepSeed);
                Optimizer.zero_grad();
                long tokens = 0;
                long firstMicro = (s - 1) * options.Accumulation;
                double mean = GradientAccumulation.Accumulate(options.Accumulation, m =>
                {
                    var batch = batchAt(firstMicro + m);
                    if (tokensOf != null) tokens += tokensOf(batch);
                    return loss(batch);
                });
                double norm = GradientClipping.ClipGlobalNorm(parameters, options.ClipNorm);
                double lr = schedule.At(s);
                foreach (var g in Optimizer.ParamGroups) g.LearningRate = lr;
                Optimizer.step();
                double seconds = clock.Elapsed.TotalSeconds;
                metrics?.Write(s, mean, lr, norm, seconds > 0 ? tokens / seconds : 0);
                losses.Add(mean);
                last = s;
                if (CheckpointDir != null && (s == options.TotalSteps || (options.CheckpointEvery > 0 && s % options.CheckpointEvery == 0)))
                {
                    Save(s);
                    lastSaved = s;
                }
                report(s, "loss " + mean.ToString("0.####", CultureInfo.InvariantCulture));
            }
        });
        if (last > lastSaved && CheckpointDir != null) Save(last);
        return new TrainingRun(first, last, losses, last == options.TotalSteps);
    }

    void Save(long step) =>
        TrainingCheckpoint.Save(CheckpointDir!, new TrainingState(step, step * options.Accumulation, step, options.Seed, options.ResumeKey()), state, Optimizer);

    public void Dispose() => Optimizer.Dispose();
}
