namespace MMedExpert.Core.Training;

/// <summary>
/// One single-turn visual question as the trainers and the evaluator see it: images (file paths) then text in the
/// user turn, and optionally the assistant's answer (for supervised fine-tuning).
/// </summary>
public sealed record VisionChatSample(IReadOnlyList<string> ImagePaths, string UserText, string? AssistantText = null, string? SystemPrompt = null)
{
    /// <summary>
    /// The assistant text is the start of an answer, not all of it: training covers its tokens but not the end of the
    /// turn, so the model learns the beginning without learning to stop there (pretraining teaches a trace's first step
    /// and leaves the rest to later stages).
    /// </summary>
    public bool Open { get; init; }
}
