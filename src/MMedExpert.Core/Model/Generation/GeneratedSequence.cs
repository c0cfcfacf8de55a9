namespace MMedExpert.Core.Model.Generation;

public enum FinishReason
{
    /// <summary>A stop token was generated (it is the last of <see cref="GeneratedSequence.TokenIds"/>).</summary>
    Stop,
    /// <summary>max_new_tokens was reached.</summary>
    Length,
}

/// <summary>
/// One sample's output: the new token ids (a final stop token included), their text (the stop token left out), and for
/// every new token its log-probability under the model (log-softmax of the raw logits, before temperature / top-k / top-p:
/// the policy probability GRPO needs; <see cref="Qwen25VLGenerator.ScoreCompletions"/> recomputes the same values).
/// </summary>
public sealed record GeneratedSequence(IReadOnlyList<int> TokenIds, string Text, IReadOnlyList<float> LogProbs, FinishReason Finish);
