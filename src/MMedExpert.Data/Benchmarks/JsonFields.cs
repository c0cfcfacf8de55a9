using System.Text.Json;
using MMedExpert.Data.Schema;

namespace MMedExpert.Data.Benchmarks;

/// <summary>Typed field access for benchmark records; every failure names the location (file and item) and the field.</summary>
internal sealed class JsonFields(JsonElement obj, string location)
{
    public DataException Fail(string field, string problem) => new($"{location}: field '{field}': {problem}", field);

    public bool Has(string name) => obj.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null;

    public JsonElement Get(string name) =>
        obj.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null ? v : throw Fail(name, "missing");

    public string String(string name, bool allowNumber = false)
    {
        var v = Get(name);
        if (allowNumber && v.ValueKind == JsonValueKind.Number) return v.GetRawText();
        if (v.ValueKind != JsonValueKind.String) throw Fail(name, $"expected a string, got {v.ValueKind}");
        var s = v.GetString()!;
        if (s.Trim().Length == 0) throw Fail(name, "empty");
        return s;
    }

    public string? OptionalString(string name) => Has(name) ? String(name) : null;

    /// <summary>Checks that option letters run from A without gaps, within A–E.</summary>
    public static void CheckLetters(IReadOnlyDictionary<string, string> options, Func<string, DataException> fail)
    {
        foreach (var k in options.Keys)
            if (!Vocabulary.OptionLetters.Contains(k)) throw fail($"bad option letter '{k}' (allowed: A–E)");
        if (options.Count < 2) throw fail($"needs at least two options (got {options.Count})");
        for (int i = 0; i < options.Count; i++)
            if (!options.ContainsKey(Vocabulary.OptionLetters[i])) throw fail($"letters must run from A without gaps (missing {Vocabulary.OptionLetters[i]})");
    }
}
