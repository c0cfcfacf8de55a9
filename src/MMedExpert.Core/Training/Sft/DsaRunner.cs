using MMedExpert.Core.IO;
using MMedExpert.Core.Lora;
using MMedExpert.Core.Model;
using MMedExpert.Core.Model.Loading;

namespace MMedExpert.Core.Training.Sft;

/// <summary>
/// Domain-Specific Adaptation: one LoRA expert per clinical specialty, each fine-tuned from the same base on its
/// specialty's reasoning traces with its own initialization (the diverse starting points RL then explores from).
/// </summary>
public static class DsaRunner
{
    /// <summary>
    /// Trains one expert and saves it as a PEFT adapter in <paramref name="adapterDir"/> (atomically). Checkpoints and
    /// metrics go to <paramref name="workDir"/>, so an interrupted expert resumes. The base is loaded fresh for each
    /// expert: base-changing initializations (PiSSA, OLoRA) must not leak into the next one. <paramref name="compute"/>:
    /// the matmul dtype of <see cref="MixedPrecision"/> (null: the weights' own).
    /// </summary>
    public static TrainingRun TrainExpert(string baseDir, VisionChatEncoder encoder, IReadOnlyList<VisionChatSample> samples,
        string specialty, LoraConfig lora, TrainerOptions options, int batchSize, string adapterDir, string workDir,
        ProgressReporter? progress = null, bool resume = false, CancellationToken cancel = default, TorchSharp.torch.ScalarType? compute = null)
    {
        using var loaded = ModelLoader.Load(new ModelReference(baseDir), new ModelLoadOptions { Compute = compute });
        var model = loaded.Model;
        using var adapters = new LoraAdapters(model);
        adapters.Add(specialty, lora with { BaseModelNameOrPath = lora.BaseModelNameOrPath ?? Path.GetFullPath(baseDir) }, options.Seed);
        adapters.SetActive(specialty);
        var run = SftRunner.Train(model, encoder, samples, adapters.TrainableParameters(specialty), options with { OutputDir = workDir },
            batchSize, adapters.State(specialty), progress, resume, cancel);
        // An interrupted expert stays in its checkpoint (resume finishes it); only a finished one becomes the adapter.
        if (run.Completed) adapters.Save(specialty, adapterDir);
        return run;
    }
}
