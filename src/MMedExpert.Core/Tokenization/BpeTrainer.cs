using System.Text;

namespace MMedExpert.Core.Tokenization;

/// <summary>
/// Trains a small byte-level BPE in Qwen2's format, so a small model can have its own tokenizer built from the synthetic
/// corpus: the same normalizer, pre-tokenizer and decoder as Qwen2, a vocabulary of 256 byte tokens plus the learned
/// merges, and Qwen2.5-VL's added tokens (ids right after the vocabulary, in Qwen2.5-VL's order). The corpus is cut
/// exactly as encoding cuts it (added tokens out, NFC, Qwen2 split), words are counted, and the most frequent adjacent
/// pair is merged repeatedly (ties: the pair of smaller ids), the classic BPE training loop.
/// </summary>
public static class BpeTrainer
{
    /// <summary>Qwen2.5-VL's added tokens in id order, with their special flag (its ids 151643..151664).</summary>
    public static readonly IReadOnlyList<(string Content, bool Special)> Qwen25VLAddedTokens =
    [
        ("<|endoftext|>", true), ("<|im_start|>", true), ("<|im_end|>", true),
        ("<|object_ref_start|>", true), ("<|object_ref_end|>", true), ("<|box_start|>", true), ("<|box_end|>", true),
        ("<|quad_start|>", true), ("<|quad_end|>", true), ("<|vision_start|>", true), ("<|vision_end|>", true),
        ("<|vision_pad|>", true), ("<|image_pad|>", true), ("<|video_pad|>", true),
        ("<tool_call>", false), ("</tool_call>", false), ("<|fim_prefix|>", false), ("<|fim_middle|>", false),
        ("<|fim_suffix|>", false), ("<|fim_pad|>", false), ("<|repo_name|>", false), ("<|file_sep|>", false),
    ];

    public static readonly IReadOnlyList<string> ReasoningTokens = ["<think>", "</think>", "<answer>", "</answer>"];

    /// <summary>Trains, writes tokenizer.json atomically at <paramref name="path"/>, and returns it read back from disk.</summary>
    public static Qwen2Tokenizer TrainToFile(IEnumerable<string> texts, string path, BpeTrainerOptions? options = null)
    {
        TokenizerFile.Write(path, Train(texts, options, path));
        return Qwen2Tokenizer.FromFile(path);
    }

    public static TokenizerDefinition Train(IEnumerable<string> texts, BpeTrainerOptions? options = null, string sourceName = "(trained)")
    {
        options ??= new BpeTrainerOptions();
        if (options.Merges < 0) throw new ArgumentOutOfRangeException(nameof(options), "Merges must be >= 0");
        var addedContents = Qwen25VLAddedTokens.Select(t => t.Content)
            .Concat(options.ReasoningTokens ? ReasoningTokens : []).ToList();

        var words = CountWords(texts, new AddedTokenMatcher(addedContents.Select((c, i) => new AddedToken(i, c, true))));
        var tokens = new List<string>(256 + options.Merges);
        var tokenIds = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int b = 0; b < 256; b++)
        {
            tokens.Add(ByteLevelAlphabet.ByteToChar[b].ToString());
            tokenIds[tokens[b]] = b;
        }

        var merges = LearnMerges(words, tokens, tokenIds, options);

        var vocab = new Dictionary<string, int>(tokenIds, StringComparer.Ordinal);
        var added = new List<AddedToken>();
        foreach (var (content, special) in Qwen25VLAddedTokens) added.Add(new AddedToken(tokens.Count + added.Count, content, special));
        if (options.ReasoningTokens)
            foreach (var content in ReasoningTokens) added.Add(new AddedToken(tokens.Count + added.Count, content, false));
        return new TokenizerDefinition(sourceName, vocab, merges, added);
    }

    sealed class Word(int[] symbols, long count)
    {
        public int[] Symbols = symbols;
        public readonly long Count = count;
    }

    static List<Word> CountWords(IEnumerable<string> texts, AddedTokenMatcher added)
    {
        var counts = new Dictionary<string, long>(StringComparer.Ordinal);
        var lookup = counts.GetAlternateLookup<ReadOnlySpan<char>>();
        void CountSegment(string segment)
        {
            string normalized = TextNormalizer.Nfc(segment);
            for (int i = 0; i < normalized.Length;)
            {
                int end = Qwen2PreTokenizer.NextPieceEnd(normalized, i);
                var piece = normalized.AsSpan(i, end - i);
                lookup[piece] = lookup.TryGetValue(piece, out long c) ? c + 1 : 1;
                i = end;
            }
        }
        foreach (var text in texts)
        {
            int pos = 0;
            while (added.TryFindNext(text, pos, out int at, out var token))
            {
                CountSegment(text[pos..at]);
                pos = at + token.Content.Length;
            }
            CountSegment(text[pos..]);
        }
        // Sorted so training does not depend on hash order.
        return counts.OrderBy(kv => kv.Key, StringComparer.Ordinal)
            .Select(kv => new Word(Encoding.UTF8.GetBytes(kv.Key).Select(b => (int)b).ToArray(), kv.Value))
            .ToList();
    }

    static long Key(int a, int b) => ((long)a << 32) | (uint)b;

    static List<(string, string)> LearnMerges(List<Word> words, List<string> tokens, Dictionary<string, int> tokenIds, BpeTrainerOptions options)
    {
        var pairCounts = new Dictionary<long, long>();
        var pairWords = new Dictionary<long, HashSet<int>>();
        // Max-heap on count; ties go to the smaller pair key (smaller left id, then right id).
        var heap = new PriorityQueue<long, (long NegCount, long Key)>();

        void AddPairs(int w, long sign, HashSet<long>? touched)
        {
            var s = words[w].Symbols;
            for (int i = 0; i + 1 < s.Length; i++)
            {
                long k = Key(s[i], s[i + 1]);
                pairCounts[k] = pairCounts.GetValueOrDefault(k) + sign * words[w].Count;
                if (sign > 0)
                {
                    if (!pairWords.TryGetValue(k, out var set)) pairWords[k] = set = [];
                    set.Add(w);
                }
                touched?.Add(k);
            }
        }
        for (int w = 0; w < words.Count; w++) AddPairs(w, +1, null);
        foreach (var (k, c) in pairCounts) heap.Enqueue(k, (-c, k));

        var merges = new List<(string, string)>();
        var touchedPairs = new HashSet<long>();
        while (merges.Count < options.Merges && heap.TryDequeue(out long best, out var priority))
        {
            long count = pairCounts.GetValueOrDefault(best);
            if (count != -priority.NegCount)
            {
                if (count > 0) heap.Enqueue(best, (-count, best));
                continue;
            }
            if (count < options.MinPairFrequency) break;

            int a = (int)(best >> 32), b = (int)(uint)best;
            string merged = tokens[a] + tokens[b];
            if (!tokenIds.TryGetValue(merged, out int newId))
            {
                newId = tokens.Count;
                tokens.Add(merged);
                tokenIds[merged] = newId;
            }
            merges.Add((tokens[a], tokens[b]));

            touchedPairs.Clear();
            foreach (int w in pairWords[best].ToArray())
            {
                var s = words[w].Symbols;
                if (!ContainsPair(s, a, b)) continue;
                AddPairs(w, -1, touchedPairs);
                words[w].Symbols = Replace(s, a, b, newId);
                AddPairs(w, +1, touchedPairs);
            }
            pairCounts.Remove(best);
            foreach (long k in touchedPairs)
                if (k != best && pairCounts.GetValueOrDefault(k) is var c && c > 0) heap.Enqueue(k, (-c, k));
        }
        return merges;
    }

    static bool ContainsPair(int[] s, int a, int b)
    {
        for (int i = 0; i + 1 < s.Length; i++) if (s[i] == a && s[i + 1] == b) return true;
        return false;
    }

    /// <summary>Non-overlapping occurrences of (a, b), left to right, become <paramref name="merged"/>.</summary>
    static int[] Replace(int[] s, int a, int b, int merged)
    {
        var result = new List<int>(s.Length);
        for (int i = 0; i < s.Length; i++)
        {
            if (i + 1 < s.Length && s[i] == a && s[i + 1] == b) { result.Add(merged); i++; }
            else result.Add(s[i]);
        }
        return result.ToArray();
    }
}
