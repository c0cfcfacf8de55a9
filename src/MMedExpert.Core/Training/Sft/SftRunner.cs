using MMedExpert.Core.Model;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MMedExpert.Core.Training.Sft;

/// <summary>
/// Supervised fine-tuning on chat samples: loss on the assistant's tokens, length-bucketed batches, and the training
/// kit's AdamW, cosine schedule, clipping, accumulation, checkpoints and metrics. What is trained is whatever
/// <paramref name="parameters"/> holds: the whole model (pretraining the base) or one LoRA adapter (a DSA expert).
/// </summary>
public static class SftRunner
{
    public static TrainingRun Train(Qwen25VLForConditionalGeneration model, VisionChatEncoder encoder, IReadOnlyList<VisionChatSample> samples,
        IReadOnlyList<Parameter> parameters, TrainerOptions options, int batchSize, IReadOnlyList<(string Name, Tensor Tensor)>? state = null,
        ProgressReporter? progress = null, bool resume = false, CancellationToken cancel = default)
    {
        if (samples.Count == 0) throw new TrainingException("no training samples");
        // Lengths in tokens (text only; every sample of a data set has the same image count), for length bucketing.
        var lengths = samples.Select(s => encoder.Tokenizer.Encode(s.UserText + (s.AssistantText ?? "")).Length).ToList();
        var bucketing = new LengthBucketing(lengths, Math.Min(batchSize, samples.Count), seed: options.Seed);
        model.train();
        using var trainer = new Trainer<TrainingBatch>(options, parameters,
            index => encoder.Training(bucketing.BatchAt(index).Select(i => samples[i]).ToList()),
            batch =>
            {
                using (batch) return SftLoss.Compute(model, batch);
            },
            state, batch => batch.Tokens, progress);
        var run = trainer.Run(resume, cancel);
        model.eval();
        return run;
    }
}
