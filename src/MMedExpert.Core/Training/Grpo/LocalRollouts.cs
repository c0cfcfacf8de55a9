using MMedExpert.Core.Model.Generation;

namespace MMedExpert.Core.Training.Grpo;

/// <summary>
/// Rollouts from the trainer's own model: each distinct prompt is encoded and prefilled once, its cache shared by the
/// completions that continue it (<see cref="Qwen25VLGenerator.Generate(PromptBatch, IReadOnlyList{int}, GenerationOptions)"/>).
/// </summary>
public sealed class LocalRollouts(Qwen25VLGenerator generator, VisionChatEncoder encoder) : IRolloutSource
{
    static readonly IReadOnlyDictionary<string, double> None = new Dictionary<string, double>();

    public void BeginStep(long step) { }

    public IReadOnlyList<GeneratedSequence> Sample(IReadOnlyList<VisionChatSample> prompts, IReadOnlyList<int> promptOf, GenerationOptions options)
    {
        var batch = encoder.Prompts(prompts);
        try { return generator.Generate(batch, promptOf, options); }
        finally { batch.PixelValues?.Dispose(); batch.ImageGridThw?.Dispose(); }
    }

    public IReadOnlyDictionary<string, double> StepMetrics() => None;
}
