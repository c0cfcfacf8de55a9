using MMedExpert.Cli.Pretraining;
using MMedExpert.Core.IO;
using MMedExpert.Core.Model;
using MMedExpert.Core.Tokenization;
using MMedExpert.Core.Training;
using MMedExpert.Core.Training.Sft;
using MMedExpert.Core.Vision;
using MMedExpert.Data.MedSynth;
using MMedExpert.Data.Schema;

namespace MMedExpert.Cli.Pipeline.Stages;

/// <summary>
/// Stage 3: the base model. A checkpoint is used as it is; the shipped base (the default) is checked against the SHA-256
/// of its provenance (<see cref="ShippedBase"/>). From scratch (base.source = scratch), the preset model is built over the
/// tokenizer, its vision tower is warmed up on MedSynth's image-finding labels (a released checkpoint's tower comes
/// pretrained; see <see cref="VisionWarmup"/>), and it is pretrained briefly (the language model, all specialties) so
/// that it sees images and answers in the format; the specialty experts then start from it.
/// </summary>
public static class BaseStage
{
    public static Stage Create(RunContext run) => new("base", "base model: build the preset and pretrain it briefly", s =>
    {
        var c = run.Config.Base;
        if (c.Checkpoint is not null)
        {
            if (!Directory.Exists(run.BaseDir)) throw new PipelineException($"base.checkpoint {run.BaseDir}: folder not found");
            Qwen25VLConfig.Load(Path.Combine(run.BaseDir, "config.json"));
            s.Log($"using the checkpoint at {run.BaseDir}");
            return new List<string>();
        }
        if (!run.BuildsBase)
        {
            var provenance = ShippedBase.Verify(run.BaseDir);
            s.Log($"using the shipped base at {run.BaseDir} (SHA-256 {provenance.Sha256[..12]}… matches its provenance; " +
                  $"{provenance.Steps} pretraining steps, commit {provenance.Commit[..Math.Min(7, provenance.Commit.Length)]})");
            return new List<string>();
        }
        var tokenizer = Qwen2Tokenizer.FromFile(TokenizerStage.PathOf(run));
        var config = Qwen25VLConfig.Preset(c.Preset).WithTokenizer(tokenizer);
        var processorConfig = new ImageProcessorConfig();
        var processor = new ImageProcessor(processorConfig);
        var encoder = new VisionChatEncoder(tokenizer, processor);
        using var model = Qwen25VL.CreateRandom(config, run.Config.Seed);
        s.Log($"{c.Preset}: {model.ParameterCount():N0} parameters, vocabulary {config.VocabSize}");

        var sftItems = run.Items("sft");
        bool warmed = WarmUpVision(run, sftItems, model, processor, s);
        var samples = sftItems.Select(i => MedItemSamples.Training(i, run.DataDir, run.Trace)).ToList();
        var options = new TrainerOptions
        {
            LearningRate = c.LearningRate, WarmupSteps = Math.Max(1, c.PretrainSteps / 10), TotalSteps = c.PretrainSteps,
            ClipNorm = 1.0, Seed = run.Config.Seed, OutputDir = run.WorkDir("base"), CheckpointEvery = 50, Description = "pretrain",
        };
        // A frozen tower gets no gradient at all (requires_grad off), so backward stops at its output instead of
        // computing and accumulating gradients the optimizer never reads.
        if (warmed && c.FreezeWarmedVision)
            foreach (var p in model.visual.parameters()) p.requires_grad = false;
        var parameters = model.parameters().Where(p => p.requires_grad).ToList();
        MixedPrecision.Apply(model, run.ComputeDType);
        var result = SftRunner.Train(model, encoder, samples, parameters, options, c.BatchSize,
            progress: ProgressReporter.Create(), resume: true);
        s.Log($"pretraining loss {result.Losses.FirstOrDefault():F3} → {result.Losses.LastOrDefault():F3}");

        // The tokenizer folder also holds the processor config, so Save copies both next to the weights.
        string companions = Path.GetDirectoryName(TokenizerStage.PathOf(run))!;
        AtomicFile.WriteAllText(Path.Combine(companions, "preprocessor_config.json"), processorConfig.ToJson().ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
        Qwen25VL.Save(model, run.BaseDir, companionsFrom: companions);
        Directory.CreateDirectory(Path.GetDirectoryName(run.MetricsPath("pretrain"))!);
        File.Copy(Path.Combine(run.WorkDir("base"), "metrics.jsonl"), run.MetricsPath("pretrain"), overwrite: true);
        var outputs = Directory.GetFiles(run.BaseDir).Append(run.MetricsPath("pretrain"));
        return (warmed ? outputs.Append(run.MetricsPath("vision-warmup")) : outputs).ToList();
    });

    /// <summary>
    /// The supervised vision warm-up (<see cref="VisionWarmup"/>) on the image findings of the SFT split, scored on the
    /// validation split; false when it is off or the data carries no image-finding labels (not MedSynth).
    /// </summary>
    static bool WarmUpVision(RunContext run, IReadOnlyList<MedItem> sftItems, Qwen25VLForConditionalGeneration model, ImageProcessor processor, StageContext s)
    {
        var c = run.Config.Base;
        if (c.VisionWarmupSteps <= 0) return false;
        if (ImageFindingLabels.Samples(sftItems, run.DataDir) is not { } train || ImageFindingLabels.Samples(run.Items("val"), run.DataDir) is not { } heldOut)
        {
            s.Log("vision warm-up skipped: the data carries no MedSynth image-finding labels");
            return false;
        }
        var options = new TrainerOptions
        {
            LearningRate = c.VisionWarmupLearningRate, WarmupSteps = Math.Max(1, c.VisionWarmupSteps / 10), TotalSteps = c.VisionWarmupSteps,
            ClipNorm = 1.0, Seed = run.Config.Seed, OutputDir = run.WorkDir("vision-warmup"), CheckpointEvery = 100, Description = "vision warm-up",
        };
        var result = VisionWarmup.Train(model.visual, processor, train, heldOut, ImageFindingLabels.Count, options,
            c.VisionWarmupBatchSize, ProgressReporter.Create(), resume: true);
        s.Log($"vision warm-up loss {result.Run.Losses.FirstOrDefault():F3} → {result.Run.Losses.LastOrDefault():F3}; held-out accuracy per image finding:");
        for (int i = 0; i < result.HeldOutAccuracy.Length; i++)
            s.Log($"  {ImageFindingLabels.Name(i)}: " + (double.IsNaN(result.HeldOutAccuracy[i]) ? "no held-out image" : $"{100 * result.HeldOutAccuracy[i]:F1} %"));
        Directory.CreateDirectory(Path.GetDirectoryName(run.MetricsPath("vision-warmup"))!);
        File.Copy(Path.Combine(run.WorkDir("vision-warmup"), "metrics.jsonl"), run.MetricsPath("vision-warmup"), overwrite: true);
        return true;
    }
}
