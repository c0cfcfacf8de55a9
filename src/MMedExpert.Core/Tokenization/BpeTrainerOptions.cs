namespace MMedExpert.Core.Tokenization;

/// <summary>Parameters of <see cref="BpeTrainer"/>.</summary>
public sealed record BpeTrainerOptions
{
    /// <summary>How many merges to learn at most (the vocabulary is 256 byte tokens plus one token per new merged string).</summary>
    public int Merges { get; init; } = 4000;

    /// <summary>A pair seen fewer times than this in the corpus (words weighted by count) is not merged; training stops.</summary>
    public int MinPairFrequency { get; init; } = 2;

    /// <summary>Also add &lt;think&gt; &lt;/think&gt; &lt;answer&gt; &lt;/answer&gt; as non-special added tokens (after Qwen2.5-VL's own).</summary>
    public bool ReasoningTokens { get; init; } = true;
}
