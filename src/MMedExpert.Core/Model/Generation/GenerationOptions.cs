namespace MMedExpert.Core.Model.Generation;

/// <summary>How to generate: greedy when <see cref="Temperature"/> is 0, else sampling with optional top-k / top-p.</summary>
public sealed record GenerationOptions
{
    public int MaxNewTokens { get; init; } = 256;
    /// <summary>0 = greedy (argmax); otherwise logits are divided by it before sampling.</summary>
    public double Temperature { get; init; }
    /// <summary>0 = off; otherwise only the k most likely tokens can be drawn.</summary>
    public int TopK { get; init; }
    /// <summary>1 = off; otherwise the smallest set of most likely tokens whose probability reaches p (nucleus sampling).</summary>
    public double TopP { get; init; } = 1.0;
    /// <summary>Seed of the torch generator that draws the samples (same seed, same inputs → same outputs).</summary>
    public long Seed { get; init; }
    /// <summary>Tokens that end a sequence (kept as its last token); default &lt;|im_end|&gt; and &lt;|endoftext|&gt;.</summary>
    public IReadOnlyList<int> StopTokenIds { get; init; } = QwenSpecialTokens.DefaultStops;
    /// <summary>
    /// Tokens never generated (HF's suppress_tokens), e.g. the vision tokens: a sampled &lt;|image_pad|&gt; would
    /// otherwise be taken for an image slot when the completion is scored.
    /// </summary>
    public IReadOnlyList<int> SuppressTokenIds { get; init; } = Array.Empty<int>();

    public GenerationOptions Validate()
    {
        if (MaxNewTokens < 0) throw new ArgumentException($"max_new_tokens must be ≥ 0 (got {MaxNewTokens})");
        if (Temperature < 0 || double.IsNaN(Temperature)) throw new ArgumentException($"temperature must be ≥ 0 (got {Temperature})");
        if (TopK < 0) throw new ArgumentException($"top_k must be ≥ 0 (got {TopK})");
        if (!(TopP > 0 && TopP <= 1)) throw new ArgumentException($"top_p must be in (0, 1] (got {TopP})");
        return this;
    }
}

/// <summary>Ids of Qwen2.5's special tokens that generation needs (fixed by the published tokenizer).</summary>
public static class QwenSpecialTokens
{
    public const int EndOfText = 151643;   // <|endoftext|>
    public const int ImStart = 151644;     // <|im_start|>
    public const int ImEnd = 151645;       // <|im_end|>
    public const int VisionStart = 151652; // <|vision_start|>
    public const int VisionEnd = 151653;   // <|vision_end|>
    public const int ImagePad = 151655;    // <|image_pad|>

    public static readonly IReadOnlyList<int> DefaultStops = new[] { ImEnd, EndOfText };
}
