using System.Text.Encodings.Web;
using System.Text.Json;
using MMedExpert.Core.IO;

namespace MMedExpert.Core.Tokenization;

/// <summary>
/// Reads and writes Hugging Face tokenizer.json files of the Qwen2 shape: BPE model, NFC normalizer, Split(Qwen2 regex,
/// Isolated) + ByteLevel(no regex, no prefix space) pre-tokenizer, ByteLevel decoder. Reading accepts exactly what the
/// tokenizer can reproduce and rejects everything else with the file and the JSON field, rather than tokenizing
/// differently from the reference. A tokenizer_config.json next to the file contributes its added_tokens_decoder entries
/// and eos/pad token names.
/// </summary>
public static class TokenizerFile
{
    public const string ConfigFileName = "tokenizer_config.json";

    public static TokenizerDefinition Read(string path)
    {
        if (!File.Exists(path)) throw new TokenizerException(path, "(file)", "not found");
        JsonDocument doc;
        try
        {
            using var stream = File.OpenRead(path);
            doc = JsonDocument.Parse(stream, new JsonDocumentOptions { MaxDepth = 256 });
        }
        catch (JsonException e)
        {
            throw new TokenizerException(path, $"(JSON, line {e.LineNumber + 1})", $"not valid JSON: {e.Message}", e);
        }
        using (doc)
        {
            var def = ReadDefinition(path, doc.RootElement);
            string config = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path))!, ConfigFileName);
            return File.Exists(config) ? ApplyConfig(def, config) : def;
        }
    }

    static TokenizerDefinition ReadDefinition(string file, JsonElement root)
    {
        if (root.ValueKind != JsonValueKind.Object) throw new TokenizerException(file, "$", "expected a JSON object");

        RequireNull(file, root, "truncation", "truncation is not supported; truncate ids yourself");
        RequireNull(file, root, "padding", "padding is not supported; pad ids yourself");
        CheckNormalizer(file, root);
        CheckPreTokenizer(file, root);
        CheckByteLevel(file, root, "decoder", allowNull: false);
        CheckByteLevel(file, root, "post_processor", allowNull: true);

        if (!root.TryGetProperty("model", out var model) || model.ValueKind == JsonValueKind.Null)
            throw new TokenizerException(file, "model", "missing");
        if (model.ValueKind != JsonValueKind.Object) throw new TokenizerException(file, "model", "expected an object");
        if (model.TryGetProperty("type", out var type) && type.GetString() != "BPE")
            throw new TokenizerException(file, "model.type", $"'{type}' is not supported (only BPE)");
        RequireNull(file, model, "dropout", "BPE dropout is not supported", field: "model.dropout");
        RequireEmptyString(file, model, "continuing_subword_prefix");
        RequireEmptyString(file, model, "end_of_word_suffix");
        if (model.TryGetProperty("byte_fallback", out var bf) && bf.ValueKind == JsonValueKind.True)
            throw new TokenizerException(file, "model.byte_fallback", "true is not supported (byte-level BPE needs no fallback)");
        bool ignoreMerges = model.TryGetProperty("ignore_merges", out var im) && im.ValueKind == JsonValueKind.True;

        var (vocab, tokenOfId) = ReadVocab(file, model);
        var merges = ReadMerges(file, model, vocab);
        var added = ReadAddedTokens(file, root, tokenOfId);
        return new TokenizerDefinition(file, vocab, merges, added, ignoreMerges);
    }

    static void RequireNull(string file, JsonElement obj, string name, string problem, string? field = null)
    {
        if (obj.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null)
            throw new TokenizerException(file, field ?? name, problem);
    }

    static void RequireEmptyString(string file, JsonElement model, string name)
    {
        if (model.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null && v.GetString() is { Length: > 0 } s)
            throw new TokenizerException(file, $"model.{name}", $"'{s}' is not supported (byte-level BPE uses none)");
    }

    static string TypeOf(string file, JsonElement e, string field)
    {
        if (e.ValueKind != JsonValueKind.Object || !e.TryGetProperty("type", out var t) || t.ValueKind != JsonValueKind.String)
            throw new TokenizerException(file, $"{field}.type", "missing");
        return t.GetString()!;
    }

    /// <summary>NFC, nothing, or a Sequence of NFCs.</summary>
    static void CheckNormalizer(string file, JsonElement root)
    {
        if (!root.TryGetProperty("normalizer", out var n) || n.ValueKind == JsonValueKind.Null) return;
        string type = TypeOf(file, n, "normalizer");
        if (type == "NFC") return;
        if (type == "Sequence" && n.TryGetProperty("normalizers", out var seq) && seq.ValueKind == JsonValueKind.Array)
        {
            int i = 0;
            foreach (var item in seq.EnumerateArray())
            {
                string t = TypeOf(file, item, $"normalizer.normalizers[{i}]");
                if (t != "NFC") throw new TokenizerException(file, $"normalizer.normalizers[{i}].type", $"'{t}' is not supported (only NFC)");
                i++;
            }
            return;
        }
        throw new TokenizerException(file, "normalizer.type", $"'{type}' is not supported (only NFC)");
    }

    /// <summary>Exactly Sequence[Split(Qwen2 pattern, Isolated), ByteLevel(add_prefix_space false, use_regex false)].</summary>
    static void CheckPreTokenizer(string file, JsonElement root)
    {
        const string f = "pre_tokenizer";
        if (!root.TryGetProperty(f, out var p) || p.ValueKind == JsonValueKind.Null)
            throw new TokenizerException(file, f, "missing (the Qwen2 Split + ByteLevel sequence is required)");
        string type = TypeOf(file, p, f);
        if (type != "Sequence") throw new TokenizerException(file, $"{f}.type", $"'{type}' is not supported (expected the Qwen2 Sequence of Split and ByteLevel)");
        if (!p.TryGetProperty("pretokenizers", out var items) || items.ValueKind != JsonValueKind.Array || items.GetArrayLength() != 2)
            throw new TokenizerException(file, $"{f}.pretokenizers", "expected two pre-tokenizers: Split and ByteLevel");

        var split = items[0];
        string t0 = TypeOf(file, split, $"{f}.pretokenizers[0]");
        if (t0 != "Split") throw new TokenizerException(file, $"{f}.pretokenizers[0].type", $"'{t0}' is not supported (expected Split)");
        if (!split.TryGetProperty("pattern", out var pattern) || pattern.ValueKind != JsonValueKind.Object
            || !pattern.TryGetProperty("Regex", out var regex) || regex.GetString() != Qwen2PreTokenizer.Pattern)
            throw new TokenizerException(file, $"{f}.pretokenizers[0].pattern.Regex", "only the Qwen2 pattern is supported");
        if (!split.TryGetProperty("behavior", out var behavior) || behavior.GetString() != "Isolated")
            throw new TokenizerException(file, $"{f}.pretokenizers[0].behavior", "only Isolated is supported");
        if (split.TryGetProperty("invert", out var invert) && invert.ValueKind == JsonValueKind.True)
            throw new TokenizerException(file, $"{f}.pretokenizers[0].invert", "true is not supported");

        var bl = items[1];
        string t1 = TypeOf(file, bl, $"{f}.pretokenizers[1]");
        if (t1 != "ByteLevel") throw new TokenizerException(file, $"{f}.pretokenizers[1].type", $"'{t1}' is not supported (expected ByteLevel)");
        CheckByteLevelFlags(file, bl, $"{f}.pretokenizers[1]");
    }

    static void CheckByteLevel(string file, JsonElement root, string field, bool allowNull)
    {
        if (!root.TryGetProperty(field, out var d) || d.ValueKind == JsonValueKind.Null)
        {
            if (allowNull) return;
            throw new TokenizerException(file, field, "missing (ByteLevel is required)");
        }
        string type = TypeOf(file, d, field);
        if (type != "ByteLevel") throw new TokenizerException(file, $"{field}.type", $"'{type}' is not supported (only ByteLevel)");
        CheckByteLevelFlags(file, d, field);
    }

    static void CheckByteLevelFlags(string file, JsonElement e, string field)
    {
        if (e.TryGetProperty("add_prefix_space", out var aps) && aps.ValueKind == JsonValueKind.True)
            throw new TokenizerException(file, $"{field}.add_prefix_space", "true is not supported");
        if (field.StartsWith("pre_tokenizer") && e.TryGetProperty("use_regex", out var ur) && ur.ValueKind == JsonValueKind.True)
            throw new TokenizerException(file, $"{field}.use_regex", "true is not supported (the Split step already splits)");
    }

    static (Dictionary<string, int> Vocab, Dictionary<int, string> TokenOfId) ReadVocab(string file, JsonElement model)
    {
        if (!model.TryGetProperty("vocab", out var v) || v.ValueKind != JsonValueKind.Object)
            throw new TokenizerException(file, "model.vocab", "missing or not an object");
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        var seenIds = new Dictionary<int, string>();
        foreach (var entry in v.EnumerateObject())
        {
            if (entry.Value.ValueKind != JsonValueKind.Number || !entry.Value.TryGetInt32(out int id) || id < 0)
                throw new TokenizerException(file, $"model.vocab[\"{entry.Name}\"]", "expected a non-negative integer id");
            if (seenIds.TryGetValue(id, out var other))
                throw new TokenizerException(file, $"model.vocab[\"{entry.Name}\"]", $"id {id} is also used by \"{other}\"");
            if (!vocab.TryAdd(entry.Name, id))
                throw new TokenizerException(file, $"model.vocab[\"{entry.Name}\"]", "listed twice");
            seenIds[id] = entry.Name;
        }
        for (int b = 0; b < 256; b++)
        {
            string s = ByteLevelAlphabet.ByteToChar[b].ToString();
            if (!vocab.ContainsKey(s))
                throw new TokenizerException(file, "model.vocab", $"missing the byte-level symbol \"{s}\" (byte 0x{b:X2}); every byte must have a token");
        }
        return (vocab, seenIds);
    }

    static List<(string, string)> ReadMerges(string file, JsonElement model, Dictionary<string, int> vocab)
    {
        if (!model.TryGetProperty("merges", out var m) || m.ValueKind != JsonValueKind.Array)
            throw new TokenizerException(file, "model.merges", "missing or not an array");
        var merges = new List<(string, string)>(m.GetArrayLength());
        var spans = vocab.GetAlternateLookup<ReadOnlySpan<char>>();
        int i = 0;
        foreach (var item in m.EnumerateArray())
        {
            string field = $"model.merges[{i}]";
            string left, right;
            if (item.ValueKind == JsonValueKind.String)
            {
                var parts = item.GetString()!.Split(' ');
                if (parts.Length != 2) throw new TokenizerException(file, field, $"\"{item.GetString()}\" is not two tokens separated by one space");
                (left, right) = (parts[0], parts[1]);
            }
            else if (item.ValueKind == JsonValueKind.Array && item.GetArrayLength() == 2
                     && item[0].ValueKind == JsonValueKind.String && item[1].ValueKind == JsonValueKind.String)
                (left, right) = (item[0].GetString()!, item[1].GetString()!);
            else throw new TokenizerException(file, field, "expected \"a b\" or [\"a\", \"b\"]");

            if (!vocab.ContainsKey(left)) throw new TokenizerException(file, field, $"token \"{left}\" is not in model.vocab");
            if (!vocab.ContainsKey(right)) throw new TokenizerException(file, field, $"token \"{right}\" is not in model.vocab");
            if (!spans.ContainsKey(Concat(left, right, stackalloc char[left.Length + right.Length <= 256 ? left.Length + right.Length : 0])))
                throw new TokenizerException(file, field, $"merged token \"{left + right}\" is not in model.vocab");
            merges.Add((left, right));
            i++;
        }
        return merges;
    }

    /// <summary>left + right, in <paramref name="buffer"/> when it fits (merge tokens are short), else a new string.</summary>
    internal static ReadOnlySpan<char> Concat(string left, string right, Span<char> buffer)
    {
        if (buffer.Length < left.Length + right.Length) return left + right;
        left.AsSpan().CopyTo(buffer);
        right.AsSpan().CopyTo(buffer[left.Length..]);
        return buffer[..(left.Length + right.Length)];
    }

    static List<AddedToken> ReadAddedTokens(string file, JsonElement root, Dictionary<int, string> byId)
    {
        var list = new List<AddedToken>();
        if (!root.TryGetProperty("added_tokens", out var arr) || arr.ValueKind == JsonValueKind.Null) return list;
        if (arr.ValueKind != JsonValueKind.Array) throw new TokenizerException(file, "added_tokens", "expected an array");
        int i = 0;
        foreach (var t in arr.EnumerateArray())
        {
            string field = $"added_tokens[{i}]";
            if (t.ValueKind != JsonValueKind.Object) throw new TokenizerException(file, field, "expected an object");
            if (!t.TryGetProperty("id", out var idEl) || !idEl.TryGetInt32(out int id) || id < 0)
                throw new TokenizerException(file, $"{field}.id", "missing or not a non-negative integer");
            if (!t.TryGetProperty("content", out var c) || c.ValueKind != JsonValueKind.String || c.GetString()!.Length == 0)
                throw new TokenizerException(file, $"{field}.content", "missing or empty");
            string content = c.GetString()!;
            foreach (var flag in new[] { "lstrip", "rstrip", "single_word" })
                if (t.TryGetProperty(flag, out var fl) && fl.ValueKind == JsonValueKind.True)
                    throw new TokenizerException(file, $"{field}.{flag}", "true is not supported");
            bool special = t.TryGetProperty("special", out var sp) && sp.ValueKind == JsonValueKind.True;
            // The reference's default: special tokens are matched raw, others after normalization.
            bool normalized = t.TryGetProperty("normalized", out var nz) ? nz.ValueKind == JsonValueKind.True : !special;
            if (byId.TryGetValue(id, out var existing) && existing != content)
                throw new TokenizerException(file, $"{field}.id", $"{id} is already model.vocab's \"{existing}\"");
            if (list.Any(a => a.Id == id || a.Content == content))
                throw new TokenizerException(file, field, $"\"{content}\" (id {id}) is listed twice");
            list.Add(new AddedToken(id, content, special, normalized));
            i++;
        }
        return list;
    }

    /// <summary>Adds the config's added_tokens_decoder entries missing from tokenizer.json (as transformers does) and
    /// checks the ones present agree; reads eos_token and pad_token.</summary>
    static TokenizerDefinition ApplyConfig(TokenizerDefinition def, string config)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(File.ReadAllBytes(config)); }
        catch (JsonException e) { throw new TokenizerException(config, $"(JSON, line {e.LineNumber + 1})", $"not valid JSON: {e.Message}", e); }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw new TokenizerException(config, "$", "expected a JSON object");
            var added = def.AddedTokens.ToList();
            if (root.TryGetProperty("added_tokens_decoder", out var dec) && dec.ValueKind == JsonValueKind.Object)
                foreach (var entry in dec.EnumerateObject())
                {
                    string field = $"added_tokens_decoder[\"{entry.Name}\"]";
                    if (!int.TryParse(entry.Name, out int id) || id < 0) throw new TokenizerException(config, field, "key is not a token id");
                    if (!entry.Value.TryGetProperty("content", out var c) || c.ValueKind != JsonValueKind.String)
                        throw new TokenizerException(config, $"{field}.content", "missing");
                    string content = c.GetString()!;
                    var same = added.FirstOrDefault(a => a.Id == id);
                    if (same != null)
                    {
                        if (same.Content != content)
                            throw new TokenizerException(config, $"{field}.content", $"\"{content}\" disagrees with {def.SourcePath}'s \"{same.Content}\"");
                        continue;
                    }
                    if (def.Vocab.TryGetValue(content, out int vid) && vid == id) continue;
                    if (def.Vocab.Values.Contains(id) || added.Any(a => a.Content == content))
                        throw new TokenizerException(config, field, $"\"{content}\" (id {id}) collides with {def.SourcePath}");
                    bool special = entry.Value.TryGetProperty("special", out var sp) && sp.ValueKind == JsonValueKind.True;
                    bool normalized = entry.Value.TryGetProperty("normalized", out var nz) ? nz.ValueKind == JsonValueKind.True : !special;
                    added.Add(new AddedToken(id, content, special, normalized));
                }
            return def with { AddedTokens = added, EosToken = TokenName(config, root, "eos_token"), PadToken = TokenName(config, root, "pad_token") };
        }
    }

    static string? TokenName(string file, JsonElement root, string name)
    {
        if (!root.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        if (v.ValueKind == JsonValueKind.String) return v.GetString();
        if (v.ValueKind == JsonValueKind.Object && v.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String) return c.GetString();
        throw new TokenizerException(file, name, "expected a string or an object with content");
    }

    /// <summary>Writes <paramref name="def"/> as a Qwen2-format tokenizer.json (atomically): the fixed Qwen2 normalizer,
    /// pre-tokenizer and decoder, the vocabulary in id order and the merges in the pair form.</summary>
    public static void Write(string path, TokenizerDefinition def)
    {
        var options = new JsonWriterOptions { Indented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
        AtomicFile.Write(path, tmp =>
        {
            using var stream = File.Create(tmp);
            using var w = new Utf8JsonWriter(stream, options);
            w.WriteStartObject();
            w.WriteString("version", "1.0");
            w.WriteNull("truncation");
            w.WriteNull("padding");
            w.WriteStartArray("added_tokens");
            foreach (var t in def.AddedTokens.OrderBy(t => t.Id))
            {
                w.WriteStartObject();
                w.WriteNumber("id", t.Id);
                w.WriteString("content", t.Content);
                w.WriteBoolean("single_word", false);
                w.WriteBoolean("lstrip", false);
                w.WriteBoolean("rstrip", false);
                w.WriteBoolean("normalized", t.Normalized);
                w.WriteBoolean("special", t.Special);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteStartObject("normalizer");
            w.WriteString("type", "NFC");
            w.WriteEndObject();
            w.WriteStartObject("pre_tokenizer");
            w.WriteString("type", "Sequence");
            w.WriteStartArray("pretokenizers");
            w.WriteStartObject();
            w.WriteString("type", "Split");
            w.WriteStartObject("pattern");
            w.WriteString("Regex", Qwen2PreTokenizer.Pattern);
            w.WriteEndObject();
            w.WriteString("behavior", "Isolated");
            w.WriteBoolean("invert", false);
            w.WriteEndObject();
            WriteByteLevel(w, null);
            w.WriteEndArray();
            w.WriteEndObject();
            WriteByteLevel(w, "post_processor");
            WriteByteLevel(w, "decoder");
            w.WriteStartObject("model");
            w.WriteString("type", "BPE");
            w.WriteNull("dropout");
            w.WriteNull("unk_token");
            w.WriteString("continuing_subword_prefix", "");
            w.WriteString("end_of_word_suffix", "");
            w.WriteBoolean("fuse_unk", false);
            w.WriteBoolean("byte_fallback", false);
            w.WriteBoolean("ignore_merges", def.IgnoreMerges);
            w.WriteStartObject("vocab");
            foreach (var (token, id) in def.Vocab.OrderBy(kv => kv.Value)) w.WriteNumber(token, id);
            w.WriteEndObject();
            w.WriteStartArray("merges");
            foreach (var (a, b) in def.Merges)
            {
                // Written compact (the indented writer would spend four lines per pair).
                w.WriteRawValue(JsonSerializer.Serialize(new[] { a, b }, SerializerOptions), skipInputValidation: true);
            }
            w.WriteEndArray();
            w.WriteEndObject();
            w.WriteEndObject();
        });
    }

    static readonly JsonSerializerOptions SerializerOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    static void WriteByteLevel(Utf8JsonWriter w, string? name)
    {
        if (name == null) w.WriteStartObject(); else w.WriteStartObject(name);
        w.WriteString("type", "ByteLevel");
        w.WriteBoolean("add_prefix_space", false);
        w.WriteBoolean("trim_offsets", false);
        w.WriteBoolean("use_regex", false);
        w.WriteEndObject();
    }
}
