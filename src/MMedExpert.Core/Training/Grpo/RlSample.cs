using MMedExpert.Algebra.Rewards;

namespace MMedExpert.Core.Training.Grpo;

/// <summary>A prompt for reinforcement learning and what the reward checks know about its answer.</summary>
public sealed record RlSample(VisionChatSample Prompt, Annotations Annotations);
