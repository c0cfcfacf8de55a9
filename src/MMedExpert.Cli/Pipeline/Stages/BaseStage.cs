using MMedExpert.Core.IO;
using MMedExpert.Core.Model;
using MMedExpert.Core.Tokenization;
using MMedExpert.Core.Training;
using MMedExpert.Core.Training.Sft;
using MMedExpert.Core.Vision;
using MMedExpert.Data.Schema;

namespace MMedExpert.Cli.Pipeline.Stages;

/// <summary>
/// Stage 3: the base model. With a checkpoint, it is used as it is. Otherwise the preset model is built over the
/// tokenizer and pretrained briefly (all parameters, all specialties) so that it sees images and answers in the format;
/// the specialty experts then start from it.
/// </summary>
public static class BaseStage
{
    public static Stage Create(RunContext run) => new("base", "base model: build the preset and pretrain it briefly", s =>
    {
        var c = run.Config.Base;
        if (c.Checkpoint is not null)
        {
            Qwen25VLConfig.Load(Path.Combine(run.BaseDir, "config.json"));
            s.Log($"using the checkpoint at {run.BaseDir}");
            return new List<string>();
        }
        var tokenizer = Qwen2Tokenizer.FromFile(TokenizerStage.PathOf(run));
        var config = Qwen25VLConfig.Preset(c.Preset).WithTokenizer(tokenizer);
        var processorConfig = new ImageProcessorConfig();
        var encoder = new VisionChatEncoder(tokenizer, new ImageProcessor(processorConfig));
        using var model = Qwen25VL.CreateRandom(config, run.Config.Seed);
        s.Log($"{c.Preset}: {model.ParameterCount():N0} parameters, vocabulary {config.VocabSize}");

        var samples = run.Items("sft").Select(i => MedItemSamples.Training(i, run.DataDir, run.Trace)).ToList();
        var options = new TrainerOptions
        {
            LearningRate = c.LearningRate, WarmupSteps = Math.Max(1, c.PretrainSteps / 10), TotalSteps = c.PretrainSteps,
            ClipNorm = 1.0, Seed = run.Config.Seed, OutputDir = run.WorkDir("base"), CheckpointEvery = 50, Description = "pretrain",
        };
        var parameters = model.parameters().ToList();
        var result = SftRunner.Train(model, encoder, samples, parameters, options, c.BatchSize,
            progress: ProgressReporter.Create(), resume: true);
        s.Log($"pretraining loss {result.Losses.FirstOrDefault():F3} → {result.Losses.LastOrDefault():F3}");

        // The tokenizer folder also holds the processor config, so Save copies both next to the weights.
        string companions = Path.GetDirectoryName(TokenizerStage.PathOf(run))!;
        AtomicFile.WriteAllText(Path.Combine(companions, "preprocessor_config.json"), processorConfig.ToJson().ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
        Qwen25VL.Save(model, run.BaseDir, companionsFrom: companions);
        Directory.CreateDirectory(Path.GetDirectoryName(run.MetricsPath("pretrain"))!);
        File.Copy(Path.Combine(run.WorkDir("base"), "metrics.jsonl"), run.MetricsPath("pretrain"), overwrite: true);
        return Directory.GetFiles(run.BaseDir).Append(run.MetricsPath("pretrain")).ToList();
    });
}
