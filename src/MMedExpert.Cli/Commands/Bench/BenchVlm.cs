using MMedExpert.Core.Model;
using MMedExpert.Core.Tokenization;
using TorchSharp;
using static TorchSharp.torch;

namespace MMedExpert.Cli.Commands.Bench;

/// <summary>
/// Random Qwen2.5-VL models for benchmarks, over a tokenizer of the pipeline's size (2,000 tokens) trained here on
/// seeded synthetic text: figures then reflect the vocabulary the embedded run uses, not Qwen's 152k rows.
/// </summary>
public static class BenchVlm
{
    static readonly string[] Syllables =
    [
        "ab", "ac", "al", "an", "ar", "as", "at", "ce", "ci", "co", "de", "di", "do", "el", "em", "en", "er", "es", "fi", "ga",
        "he", "hy", "ic", "id", "il", "im", "in", "ir", "is", "it", "la", "le", "li", "lo", "ma", "me", "mi", "mo", "na", "ne",
        "ni", "no", "ol", "om", "on", "or", "os", "pa", "pe", "pi", "po", "ra", "re", "ri", "ro", "sa", "se", "si", "so", "ta",
        "te", "ti", "to", "tu", "ul", "um", "ur", "us", "va", "ve", "vi", "xi",
    ];

    /// <summary>Deterministic pseudo-clinical words (2 to 4 syllables).</summary>
    public static string[] Words(int count, long seed)
    {
        var rng = new Random((int)(seed & 0x7fffffff));
        var words = new HashSet<string>(StringComparer.Ordinal);
        while (words.Count < count)
            words.Add(string.Concat(Enumerable.Range(0, rng.Next(2, 5)).Select(_ => Syllables[rng.Next(Syllables.Length)])));
        return words.OrderBy(w => w, StringComparer.Ordinal).ToArray();
    }

    /// <summary>A sentence of <paramref name="length"/> words drawn from <paramref name="words"/>.</summary>
    public static string Sentence(Random rng, string[] words, int length) =>
        string.Join(" ", Enumerable.Range(0, length).Select(_ => words[rng.Next(words.Length)])) + ".";

    /// <summary>A byte-level BPE in Qwen2's format with about <paramref name="vocabSize"/> tokens (Qwen2.5-VL's added tokens included).</summary>
    public static Qwen2Tokenizer Tokenizer(int vocabSize = 2000, long seed = 1)
    {
        var words = Words(4000, seed);
        var rng = new Random((int)(seed & 0x7fffffff) + 1);
        var corpus = Enumerable.Range(0, 2000).Select(_ => Sentence(rng, words, 12)).ToList();
        int merges = Math.Max(0, vocabSize - 256 - BpeTrainer.Qwen25VLAddedTokens.Count - BpeTrainer.ReasoningTokens.Count);
        return new Qwen2Tokenizer(BpeTrainer.Train(corpus, new BpeTrainerOptions { Merges = merges, MinPairFrequency = 1 }, $"bench-bpe-{vocabSize}"));
    }

    /// <summary>A randomly initialised model of the preset's shape over <paramref name="tokenizer"/>.</summary>
    public static Qwen25VLForConditionalGeneration Model(string preset, Qwen2Tokenizer tokenizer, long seed) =>
        Qwen25VL.CreateRandom(Qwen25VLConfig.Preset(preset).WithTokenizer(tokenizer), seed);

    public static string Describe(Qwen25VLConfig c) =>
        $"Qwen2.5-VL {c.Source}: hidden {c.HiddenSize}, {c.NumHiddenLayers} layers, heads {c.NumAttentionHeads}/{c.NumKeyValueHeads}, " +
        $"intermediate {c.IntermediateSize}, vocab {c.VocabSize}, vision depth {c.Vision.Depth} width {c.Vision.HiddenSize}";

    /// <summary>A 56×56 RGB PNG of seeded noise (one 4×4 patch grid: 4 image tokens).</summary>
    public static string WritePng(string path, int seed)
    {
        var rng = new Random(seed);
        var pixels = new byte[56 * 56 * 3];
        rng.NextBytes(pixels);
        using var stream = File.Create(path);
        new StbImageWriteSharp.ImageWriter().WritePng(pixels, 56, 56, StbImageWriteSharp.ColorComponents.RedGreenBlue, stream);
        return path;
    }
}
