namespace MMedExpert.Core.Training;

/// <summary>
/// One single-turn visual question as the trainers and the evaluator see it: images (file paths) then text in the
/// user turn, and optionally the assistant's answer (for supervised fine-tuning).
/// </summary>
public sealed record VisionChatSample(IReadOnlyList<string> ImagePaths, string UserText, string? AssistantText = null, string? SystemPrompt = null);
