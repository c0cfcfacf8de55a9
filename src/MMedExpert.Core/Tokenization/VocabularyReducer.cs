namespace MMedExpert.Core.Tokenization;

/// <summary>
/// Cuts a tokenizer down to the merges some texts use, keeping ids: the result encodes those texts to exactly the same
/// ids. Why that holds: at every step BPE applies the lowest-ranked merge available; the kept merges are a subset of the
/// original ones that contains every merge the original applied to these texts, so the original's choice is still
/// available and still the lowest at each step, and when the original finds nothing to merge neither does the subset.
/// Used to commit a small parity fixture instead of the 11 MB Qwen2 tokenizer.json.
/// </summary>
public static class VocabularyReducer
{
    public static TokenizerDefinition Reduce(Qwen2Tokenizer tokenizer, IEnumerable<string> texts, string sourceName)
    {
        var def = tokenizer.Definition;
        var used = new SortedSet<int>();
        foreach (var text in texts) used.UnionWith(tokenizer.MergeRanksUsed(text));

        var merges = used.Select(rank => def.Merges[rank]).ToList();
        var keep = new HashSet<string>(StringComparer.Ordinal);
        for (int b = 0; b < 256; b++) keep.Add(ByteLevelAlphabet.ByteToChar[b].ToString());
        foreach (var (left, right) in merges)
        {
            keep.Add(left);
            keep.Add(right);
            keep.Add(left + right);
        }
        var vocab = def.Vocab.Where(kv => keep.Contains(kv.Key)).ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal);
        return def with { SourcePath = sourceName, Vocab = vocab, Merges = merges };
    }
}
