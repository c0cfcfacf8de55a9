using MMedExpert.Core.Model.Generation;

namespace MMedExpert.Core.Training.Grpo;

/// <summary>
/// Where a GRPO step's completions come from: the trainer's own model (<see cref="LocalRollouts"/>, the default) or a
/// server that holds a copy of the policy (an OpenAI-compatible endpoint such as vLLM). Learning always stays with the
/// trainer; a source only samples.
/// </summary>
public interface IRolloutSource
{
    /// <summary>
    /// Called at the start of each step, before its rollouts, with the adapter as the previous step's optimizer left it:
    /// a remote source publishes the current policy here. A local source has nothing to do.
    /// </summary>
    void BeginStep(long step);

    /// <summary>
    /// One completion per entry of <paramref name="promptOf"/>: completion i continues the distinct prompt
    /// <paramref name="prompts"/>[promptOf[i]] (a group's G completions share one). Each completion's token ids end with
    /// the stop token when it stopped (the policy learns to stop), and carry one log-probability per token under the
    /// trainer's current policy.
    /// </summary>
    IReadOnlyList<GeneratedSequence> Sample(IReadOnlyList<VisionChatSample> prompts, IReadOnlyList<int> promptOf, GenerationOptions options);

    /// <summary>Extra metrics of the current step (added to its metrics line); empty for a local source.</summary>
    IReadOnlyDictionary<string, double> StepMetrics();
}
