using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using System.Text;

namespace MMedExpert.Core.Tokenization;

/// <summary>
/// Qwen2's byte-level BPE tokenizer (also Qwen2.5-VL's), read from a Hugging Face tokenizer.json and producing the same
/// ids as the reference implementation. Encoding: added tokens are cut out of the raw text first (leftmost-longest);
/// each remaining segment is NFC-normalized, split by <see cref="Qwen2PreTokenizer"/>, and each piece's UTF-8 bytes
/// are merged by <see cref="BpeModel"/>. Decoding maps tokens back to bytes and reads them as UTF-8, invalid sequences
/// becoming U+FFFD. Thread-safe; each thread keeps its own word cache.
/// Written here rather than wrapping Microsoft.ML.Tokenizers' BpeTokenizer: configured from the same file, that one gives
/// the same ids on the reference corpus but runs about 5x slower on one thread (`mmx bench tokenizer` measures both in
/// one run), and it offers neither piece offsets (the chat format's assistant mask), nor strict file validation, nor
/// the reference regex engine's Unicode semantics (code points, Oniguruma's case folding).
/// </summary>
public sealed class Qwen2Tokenizer
{
    public const string EndOfTextToken = "<|endoftext|>";
    public const string ImStartToken = "<|im_start|>";
    public const string ImEndToken = "<|im_end|>";
    public const string VisionStartToken = "<|vision_start|>";
    public const string VisionEndToken = "<|vision_end|>";
    public const string VisionPadToken = "<|vision_pad|>";
    public const string ImagePadToken = "<|image_pad|>";
    public const string VideoPadToken = "<|video_pad|>";

    readonly BpeModel _bpe;
    readonly Dictionary<string, int> _tokenToId;
    readonly string?[] _idToToken;
    readonly byte[]?[] _idBytes;
    readonly bool[] _isSpecial;
    readonly bool _ignoreMerges;
    readonly AddedTokenMatcher _rawAll, _rawNonSpecial, _normalizedAll, _normalizedNonSpecial;
    readonly ThreadLocal<PerThread> _perThread = new(() => new PerThread());

    /// <summary>What each encoding thread reuses: its word cache and an id buffer (Encode copies out of it).</summary>
    sealed class PerThread
    {
        public readonly BpeWordCache Cache = new();
        public readonly List<int> Ids = new(1024);
    }

    public TokenizerDefinition Definition { get; }

    /// <summary>The file this tokenizer was read from (named in errors).</summary>
    public string SourcePath => Definition.SourcePath;

    /// <summary>One more than the largest token id (model vocabulary and added tokens together).</summary>
    public int VocabSize { get; }

    public IReadOnlyList<AddedToken> AddedTokens => Definition.AddedTokens;

    /// <summary>Reads tokenizer.json (a folder means its tokenizer.json), plus tokenizer_config.json beside it when present.</summary>
    public static Qwen2Tokenizer FromFile(string tokenizerJsonPath) =>
        new(TokenizerFile.Read(Directory.Exists(tokenizerJsonPath) ? Path.Combine(tokenizerJsonPath, "tokenizer.json") : tokenizerJsonPath));

    public Qwen2Tokenizer(TokenizerDefinition definition)
    {
        Definition = definition;
        _ignoreMerges = definition.IgnoreMerges;
        _tokenToId = new Dictionary<string, int>(definition.Vocab, StringComparer.Ordinal);
        foreach (var t in definition.AddedTokens) _tokenToId[t.Content] = t.Id;
        VocabSize = _tokenToId.Values.Max() + 1;

        _idToToken = new string?[VocabSize];
        _idBytes = new byte[]?[VocabSize];
        _isSpecial = new bool[VocabSize];
        foreach (var (token, id) in _tokenToId) _idToToken[id] = token;
        foreach (var t in definition.AddedTokens) _isSpecial[t.Id] = t.Special;

        _bpe = BpeModel.FromDefinition(definition);

        var raw = definition.AddedTokens.Where(t => !t.Normalized).ToList();
        var normalized = definition.AddedTokens.Where(t => t.Normalized).ToList();
        _rawAll = new AddedTokenMatcher(raw);
        _rawNonSpecial = new AddedTokenMatcher(raw.Where(t => !t.Special));
        _normalizedAll = new AddedTokenMatcher(normalized);
        _normalizedNonSpecial = new AddedTokenMatcher(normalized.Where(t => !t.Special));
    }

    // ---- vocabulary -------------------------------------------------------------------------------------------------

    public int? TokenToId(string token) => _tokenToId.TryGetValue(token, out int id) ? id : null;

    public string? IdToToken(int id) => (uint)id < (uint)VocabSize ? _idToToken[id] : null;

    public bool IsSpecial(int id) => (uint)id < (uint)VocabSize && _isSpecial[id];

    /// <summary>The id of an added token the caller cannot do without; an error naming the file when it is absent.</summary>
    public int RequireToken(string token) =>
        TokenToId(token) ?? throw new TokenizerException(SourcePath, "added_tokens", $"no \"{token}\" token");

    public int EndOfText => RequireToken(EndOfTextToken);
    public int ImStart => RequireToken(ImStartToken);
    public int ImEnd => RequireToken(ImEndToken);
    public int VisionStart => RequireToken(VisionStartToken);
    public int VisionEnd => RequireToken(VisionEndToken);
    public int ImagePad => RequireToken(ImagePadToken);
    public int VideoPad => RequireToken(VideoPadToken);

    /// <summary>tokenizer_config.json's eos_token, as an id; null when the config names none.</summary>
    public int? EosTokenId => Definition.EosToken is { } s ? TokenToId(s) : null;

    /// <summary>tokenizer_config.json's pad_token, as an id; null when the config names none.</summary>
    public int? PadTokenId => Definition.PadToken is { } s ? TokenToId(s) : null;

    // ---- encoding ---------------------------------------------------------------------------------------------------

    /// <summary>Token ids of <paramref name="text"/>. With <paramref name="parseSpecial"/> false, special added tokens
    /// are tokenized as ordinary text (non-special added tokens are still matched, as in the reference).</summary>
    public int[] Encode(string text, bool parseSpecial = true)
    {
        var ids = _perThread.Value!.Ids;
        ids.Clear();
        EncodeInto(text, ids, null, parseSpecial);
        var result = ids.ToArray();
        if (ids.Capacity > 1 << 20) { ids.Clear(); ids.Capacity = 1024; } // don't keep a huge buffer after one huge text
        return result;
    }

    /// <summary>Token ids and, for each, the offset in <paramref name="text"/> where its pre-tokenized piece (or added
    /// token) starts. Offsets are exact for text already in NFC, approximate inside a segment NFC changes.</summary>
    public (int[] Ids, int[] Starts) EncodeWithOffsets(string text, bool parseSpecial = true)
    {
        var ids = new List<int>();
        var starts = new List<int>();
        EncodeInto(text, ids, starts, parseSpecial);
        return (ids.ToArray(), starts.ToArray());
    }

    /// <summary>Encodes many texts on all cores; the result is in input order.</summary>
    public int[][] EncodeBatch(IReadOnlyList<string> texts, bool parseSpecial = true)
    {
        var result = new int[texts.Count][];
        if (texts.Count == 0) return result;
        int chunk = Math.Max(1, Math.Min(64, texts.Count / (4 * Environment.ProcessorCount)));
        Parallel.ForEach(Partitioner.Create(0, texts.Count, chunk), range =>
        {
            for (int i = range.Item1; i < range.Item2; i++) result[i] = Encode(texts[i], parseSpecial);
        });
        return result;
    }

    /// <summary>Appends the ids of <paramref name="text"/> to <paramref name="ids"/> (and piece offsets to
    /// <paramref name="starts"/> when given).</summary>
    public void EncodeInto(string text, List<int> ids, List<int>? starts = null, bool parseSpecial = true)
    {
        var matcher = parseSpecial ? _rawAll : _rawNonSpecial;
        var cache = _perThread.Value!.Cache;
        int pos = 0;
        while (matcher.TryFindNext(text, pos, out int at, out var token))
        {
            EncodeSegment(text, pos, at - pos, parseSpecial, ids, starts, cache);
            ids.Add(token.Id);
            starts?.Add(at);
            pos = at + token.Content.Length;
        }
        EncodeSegment(text, pos, text.Length - pos, parseSpecial, ids, starts, cache);
    }

    void EncodeSegment(string text, int start, int length, bool parseSpecial, List<int> ids, List<int>? starts, BpeWordCache cache)
    {
        if (length == 0) return;
        var raw = text.AsSpan(start, length);
        if (TextNormalizer.IsTriviallyNfc(raw))
        {
            EncodeNormalized(raw, new OffsetMap(start, null), parseSpecial, ids, starts, cache);
            return;
        }
        string rawString = raw.ToString();
        string normalized = TextNormalizer.Nfc(rawString);
        EncodeNormalized(normalized, new OffsetMap(start, normalized == rawString ? null : rawString), parseSpecial, ids, starts, cache);
    }

    /// <summary>Maps an offset in a normalized segment back to the input text: the segment's start plus the offset,
    /// or, where NFC changed the segment (<see cref="Raw"/> set), the matching offset in the raw segment.</summary>
    readonly record struct OffsetMap(int Start, string? Raw)
    {
        public int this[int local] => Start + (Raw == null ? local : OriginalOffset(Raw, local));
    }

    /// <summary>Added tokens with normalized = true are matched here, in the normalized text.</summary>
    void EncodeNormalized(ReadOnlySpan<char> text, OffsetMap map, bool parseSpecial, List<int> ids, List<int>? starts, BpeWordCache cache)
    {
        var matcher = parseSpecial ? _normalizedAll : _normalizedNonSpecial;
        int pos = 0;
        while (!matcher.IsEmpty && matcher.TryFindNext(text, pos, out int at, out var token))
        {
            EncodePieces(text[pos..at], pos, map, ids, starts, cache);
            ids.Add(token.Id);
            starts?.Add(map[at]);
            pos = at + token.Content.Length;
        }
        EncodePieces(text[pos..], pos, map, ids, starts, cache);
    }

    void EncodePieces(ReadOnlySpan<char> text, int offset, OffsetMap map, List<int> ids, List<int>? starts, BpeWordCache cache)
    {
        for (int i = 0; i < text.Length;)
        {
            int end = Qwen2PreTokenizer.NextPieceEnd(text, i);
            int before = ids.Count;
            EncodeWord(text[i..end], ids, cache);
            if (starts != null)
            {
                int s = map[offset + i];
                for (int k = before; k < ids.Count; k++) starts.Add(s);
            }
            i = end;
        }
    }

    void EncodeWord(ReadOnlySpan<char> word, List<int> ids, BpeWordCache cache)
    {
        if (cache.TryGet(word, out var cached))
        {
            if (cached.Length == 1) ids.Add(cached[0]);
            else ids.AddRange(cached);
            return;
        }
        int max = Encoding.UTF8.GetMaxByteCount(word.Length);
        Span<byte> utf8 = max <= 512 ? stackalloc byte[max] : new byte[max];
        utf8 = utf8[..Encoding.UTF8.GetBytes(word, utf8)];
        int before = ids.Count;
        // ignore_merges: the reference emits a word found whole in the model vocabulary without merging.
        if (_ignoreMerges && Definition.Vocab.TryGetValue(ByteLevelAlphabet.Encode(utf8), out int whole))
            ids.Add(whole);
        else
            _bpe.EncodeWord(utf8, ids);
        cache.Add(word, CollectionsMarshal.AsSpan(ids)[before..].ToArray());
    }

    /// <summary>Where a position of NFC(raw) falls in raw: the shortest prefix of raw whose NFC reaches it (binary
    /// search; NFC length grows with the prefix). Used only for offsets inside segments NFC changes.</summary>
    static int OriginalOffset(string raw, int normalizedOffset)
    {
        int lo = 0, hi = raw.Length;
        while (lo < hi)
        {
            int mid = lo + (hi - lo) / 2;
            if (TextNormalizer.Nfc(raw[..mid]).Length >= normalizedOffset) hi = mid; else lo = mid + 1;
        }
        return lo;
    }

    /// <summary>The merge ranks BPE applies to each piece of <paramref name="text"/> (no cache): what a reduced vocabulary
    /// must keep to reproduce these ids.</summary>
    public List<int> MergeRanksUsed(string text)
    {
        var ranks = new List<int>();
        var sink = new List<int>();
        var pos = 0;
        void Pieces(string segment)
        {
            string normalized = TextNormalizer.Nfc(segment);
            for (int i = 0; i < normalized.Length;)
            {
                int end = Qwen2PreTokenizer.NextPieceEnd(normalized, i);
                _bpe.EncodeWord(Encoding.UTF8.GetBytes(normalized[i..end]), sink, ranks);
                i = end;
            }
        }
        while (_rawAll.TryFindNext(text, pos, out int at, out var token))
        {
            Pieces(text[pos..at]);
            pos = at + token.Content.Length;
        }
        Pieces(text[pos..]);
        return ranks;
    }

    // ---- decoding ---------------------------------------------------------------------------------------------------

    /// <summary>The text of <paramref name="ids"/>. Ids outside the vocabulary are skipped, as the reference does (a
    /// model's embedding table is usually larger than its vocabulary); invalid UTF-8 becomes U+FFFD.</summary>
    public string Decode(IEnumerable<int> ids, bool skipSpecial = false)
    {
        var bytes = new List<byte>();
        foreach (int id in ids)
        {
            if ((uint)id >= (uint)VocabSize || _idToToken[id] is not { } token) continue;
            if (skipSpecial && _isSpecial[id]) continue;
            // Filled on first use (a benign race: every thread computes the same bytes).
            var b = _idBytes[id];
            if (b == null)
            {
                var scratch = new List<byte>(token.Length);
                ByteLevelAlphabet.AppendBytes(token, scratch);
                _idBytes[id] = b = scratch.ToArray();
            }
            bytes.AddRange(b);
        }
        return Encoding.UTF8.GetString(CollectionsMarshal.AsSpan(bytes));
    }
}
