using MMedExpert.Core.Model.Vision;
using MMedExpert.Core.Runtime;
using MMedExpert.Core.Vision;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MMedExpert.Core.Training;

/// <summary>One image and the binary finding labels known for it, as (label index, value) pairs.</summary>
public sealed record ImageLabelSample(string ImagePath, IReadOnlyList<(int Label, bool Value)> Targets);

/// <summary>What a warm-up did: the training run and, per label, the accuracy on the held-out images (NaN where no
/// held-out image carries that label).</summary>
public sealed record VisionWarmupResult(TrainingRun Run, double[] HeldOutAccuracy);

/// <summary>
/// Supervised warm-up of a vision tower that starts from random weights. A released Qwen2.5-VL comes with a pretrained
/// tower; a tower trained from scratch only through the language model's loss learns to see far too slowly for a CPU
/// run (measured: image findings stayed at chance after 600 pretraining steps, while this probe reads most of them
/// within 300 steps; paper/learnability/README.md). A linear probe over the tower's output tokens, flattened so that it
/// knows where each token lies, predicts binary image-finding labels with a logistic loss; the probe is discarded
/// afterwards and the tower keeps what it learned. Images must share one patch grid (one probe width).
/// </summary>
public static class VisionWarmup
{
    public static VisionWarmupResult Train(Qwen25VisionTransformer tower, ImageProcessor processor, IReadOnlyList<ImageLabelSample> train,
        IReadOnlyList<ImageLabelSample> heldOut, int labelCount, TrainerOptions options, int batchSize,
        ProgressReporter? progress = null, bool resume = false, CancellationToken cancel = default)
    {
        if (train.Count == 0) throw new TrainingException("vision warm-up: no labelled images");
        if (labelCount < 1) throw new TrainingException($"vision warm-up: label count must be positive (got {labelCount})");
        foreach (var s in train.Concat(heldOut))
            foreach (var (label, _) in s.Targets)
                if (label < 0 || label >= labelCount)
                    throw new TrainingException($"{s.ImagePath}: label {label} outside [0, {labelCount})");

        long tokens;
        using (var first = processor.Process(new[] { train[0].ImagePath })) tokens = first.TokenCounts[0];
        var device = tower.parameters().First().device;
        random.manual_seed(Seeds.Derive(options.Seed, "vision-warmup-probe"));
        using var probe = nn.Linear(tokens * tower.OutHiddenSize, labelCount);
        probe.to(device);
        var parameters = tower.parameters().Concat(probe.parameters()).ToList();

        Batch BatchOf(IReadOnlyList<ImageLabelSample> samples)
        {
            var images = processor.Process(samples.Select(s => s.ImagePath).ToList());
            for (int i = 0; i < samples.Count; i++)
                if (images.TokenCounts[i] != tokens)
                    throw new TrainingException($"{samples[i].ImagePath}: {images.TokenCounts[i]} image tokens, but the warm-up probe reads {tokens} (all images must share one size)");
            var targets = new float[samples.Count * labelCount];
            var known = new float[samples.Count * labelCount];
            for (int i = 0; i < samples.Count; i++)
                foreach (var (label, value) in samples[i].Targets)
                {
                    targets[i * labelCount + label] = value ? 1f : 0f;
                    known[i * labelCount + label] = 1f;
                }
            return new Batch(images, tensor(targets).view(samples.Count, labelCount), tensor(known).view(samples.Count, labelCount));
        }

        Tensor Logits(Batch b)
        {
            using var scope = NewDisposeScope();
            var features = tower.forward(b.Images.PixelValues.to(device), b.Images.GridThwTensor().to(device));
            return probe.forward(features.view(b.Images.TokenCounts.Length, -1)).MoveToOuterDisposeScope();
        }

        tower.train();
        TrainingRun run;
        using (var trainer = new Trainer<Batch>(options, parameters,
                   index =>
                   {
                       var rng = new SplitMix64(Seeds.Derive(options.Seed, index));
                       return BatchOf(Enumerable.Range(0, batchSize).Select(_ => train[(int)rng.NextInt64(train.Count)]).ToList());
                   },
                   b =>
                   {
                       using (b)
                       {
                           using var scope = NewDisposeScope();
                           var loss = nn.functional.binary_cross_entropy_with_logits(Logits(b), b.Targets.to(device), b.Known.to(device), reduction: nn.Reduction.Sum)
                                      / b.Known.sum().clamp_min(1).to(device);
                           return loss.MoveToOuterDisposeScope();
                       }
                   },
                   progress: progress))
            run = trainer.Run(resume, cancel);
        tower.eval();

        var correct = new double[labelCount];
        var seen = new double[labelCount];
        using (no_grad())
            foreach (var chunk in heldOut.Chunk(64))
            {
                using var b = BatchOf(chunk);
                using var scope = NewDisposeScope();
                var predicted = Logits(b).gt(0).cpu().data<bool>().ToArray();
                for (int i = 0; i < chunk.Length; i++)
                    foreach (var (label, value) in chunk[i].Targets)
                    {
                        seen[label]++;
                        if (predicted[i * labelCount + label] == value) correct[label]++;
                    }
            }
        return new VisionWarmupResult(run, correct.Select((c, i) => seen[i] > 0 ? c / seen[i] : double.NaN).ToArray());
    }

    private sealed record Batch(ProcessedImages Images, Tensor Targets, Tensor Known) : IDisposable
    {
        public void Dispose()
        {
            Images.Dispose();
            Targets.Dispose();
            Known.Dispose();
        }
    }
}
