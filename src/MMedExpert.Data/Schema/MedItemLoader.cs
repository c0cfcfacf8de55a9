using System.Text.Json;

namespace MMedExpert.Data.Schema;

/// <summary>What a load did: lines read, items kept, lines skipped (only with skip-bad) and why.</summary>
public sealed record LoadSummary(string File, int Lines, int Loaded, int Skipped,
    IReadOnlyDictionary<string, int> SkippedByField, IReadOnlyList<string> FirstProblems)
{
    public override string ToString()
    {
        var head = $"{File}: {Lines} lines, {Loaded} items loaded, {Skipped} skipped";
        if (Skipped == 0) return head;
        var fields = string.Join(", ", SkippedByField.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => $"{kv.Key}: {kv.Value}"));
        return $"{head} ({fields})";
    }
}

public sealed record LoadResult(IReadOnlyList<MedItem> Items, LoadSummary Summary);

/// <summary>
/// Reads MMedExpert JSON lines and validates every field. A bad line throws a <see cref="DataException"/> naming
/// file:line and the field; with <c>skipBad</c> it is skipped and counted instead. Blank lines are ignored.
/// </summary>
public static class MedItemLoader
{
    static readonly HashSet<string> KnownFields =
        ["id", "specialty", "images", "question", "options", "answer", "reasoning", "perspective", "guideline", "split"];
    static readonly HashSet<string> KnownGuidelineFields = ["key_findings", "guideline_steps", "pretest_probability"];
    const string NoField = "(line)";

    public static LoadResult Load(string path, bool skipBad = false, bool checkImages = true)
    {
        if (!File.Exists(path)) throw new DataException($"{path}: file not found");
        string baseDir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        var items = new List<MedItem>();
        var seenIds = new Dictionary<string, int>(StringComparer.Ordinal);
        var byField = new SortedDictionary<string, int>(StringComparer.Ordinal);
        var problems = new List<string>();
        int lineNo = 0, skipped = 0;
        foreach (var line in File.ReadLines(path))
        {
            lineNo++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            try
            {
                var item = ParseLine(line, path, lineNo, baseDir, checkImages);
                if (seenIds.TryGetValue(item.Id, out int first))
                    throw DataException.AtLine(path, lineNo, "id", $"duplicate id '{item.Id}' (first on line {first})");
                seenIds[item.Id] = lineNo;
                items.Add(item);
            }
            catch (DataException e) when (skipBad)
            {
                skipped++;
                string key = e.Field ?? NoField;
                byField[key] = byField.GetValueOrDefault(key) + 1;
                if (problems.Count < 20) problems.Add(e.Message);
            }
        }
        return new LoadResult(items, new LoadSummary(path, lineNo, items.Count, skipped, byField, problems));
    }

    /// <summary>Parses and validates one line; <paramref name="baseDir"/> resolves the image paths.</summary>
    public static MedItem ParseLine(string line, string file, int lineNo, string baseDir, bool checkImages = true)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(line); }
        catch (JsonException e) { throw DataException.AtLine(file, lineNo, null, $"malformed JSON ({e.Message})"); }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw DataException.AtLine(file, lineNo, null, $"expected a JSON object, got {root.ValueKind}");
            var fail = (string field, string problem) => DataException.AtLine(file, lineNo, field, problem);

            foreach (var p in root.EnumerateObject())
                if (!KnownFields.Contains(p.Name)) throw fail(p.Name, "unknown field");

            string id = RequireString(root, "id", fail);
            string specialty = RequireOneOf(root, "specialty", Vocabulary.Specialties, fail);

            var images = RequireStringArray(root, "images", fail, allowEmpty: false);
            foreach (var image in images)
            {
                if (Path.IsPathRooted(image)) throw fail("images", $"'{image}' must be relative to the JSONL file's folder");
                if (checkImages && !File.Exists(Path.Combine(baseDir, image)))
                    throw fail("images", $"image not found: '{image}' (looked in {baseDir})");
            }

            string question = RequireString(root, "question", fail);
            var options = RequireOptions(root, fail);
            string answer = RequireString(root, "answer", fail);
            if (!options.ContainsKey(answer))
                throw fail("answer", $"'{answer}' is not one of the options ({string.Join(", ", options.Keys)})");

            string reasoning = RequireString(root, "reasoning", fail);
            if (!ReasoningFormat.TryParse(reasoning, out _, out var tagged))
                throw fail("reasoning", "not in the form <think>…</think><answer>…</answer>");
            if (tagged != answer) throw fail("reasoning", $"<answer> says '{tagged}' but the field 'answer' is '{answer}'");

            string perspective = RequireOneOf(root, "perspective", Vocabulary.Perspectives, fail);
            var guideline = RequireGuideline(root, perspective, fail);
            string split = RequireOneOf(root, "split", Vocabulary.Splits, fail);

            return new MedItem(id, specialty, images, question, options, answer, reasoning, perspective, guideline, split);
        }
    }

    static JsonElement RequireField(JsonElement obj, string name, Func<string, string, DataException> fail)
    {
        if (!obj.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) throw fail(name, "missing");
        return v;
    }

    static string RequireString(JsonElement obj, string name, Func<string, string, DataException> fail)
    {
        var v = RequireField(obj, name, fail);
        if (v.ValueKind != JsonValueKind.String) throw fail(name, $"expected a string, got {v.ValueKind}");
        var s = v.GetString()!;
        if (s.Trim().Length == 0) throw fail(name, "empty");
        return s;
    }

    static string RequireOneOf(JsonElement obj, string name, IReadOnlyList<string> allowed, Func<string, string, DataException> fail)
    {
        var s = RequireString(obj, name, fail);
        if (!allowed.Contains(s)) throw fail(name, $"'{s}' is not one of {string.Join(", ", allowed)}");
        return s;
    }

    static List<string> RequireStringArray(JsonElement obj, string name, Func<string, string, DataException> fail, bool allowEmpty)
    {
        var v = RequireField(obj, name, fail);
        if (v.ValueKind != JsonValueKind.Array) throw fail(name, $"expected an array, got {v.ValueKind}");
        var list = new List<string>();
        int i = 0;
        foreach (var e in v.EnumerateArray())
        {
            if (e.ValueKind != JsonValueKind.String || e.GetString()!.Trim().Length == 0)
                throw fail(name, $"element {i} must be a non-empty string");
            list.Add(e.GetString()!);
            i++;
        }
        if (!allowEmpty && list.Count == 0) throw fail(name, "empty array");
        return list;
    }

    static Dictionary<string, string> RequireOptions(JsonElement root, Func<string, string, DataException> fail)
    {
        var v = RequireField(root, "options", fail);
        if (v.ValueKind != JsonValueKind.Object) throw fail("options", $"expected an object {{\"A\": …}}, got {v.ValueKind}");
        var options = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var p in v.EnumerateObject())
        {
            if (!Vocabulary.OptionLetters.Contains(p.Name)) throw fail("options", $"bad option letter '{p.Name}' (allowed: A–E)");
            if (p.Value.ValueKind != JsonValueKind.String || p.Value.GetString()!.Trim().Length == 0)
                throw fail("options", $"option {p.Name} must be a non-empty string");
            if (!options.TryAdd(p.Name, p.Value.GetString()!)) throw fail("options", $"option {p.Name} appears twice");
        }
        if (options.Count < 2) throw fail("options", $"needs at least two options (got {options.Count})");
        for (int i = 0; i < options.Count; i++)
            if (!options.ContainsKey(Vocabulary.OptionLetters[i]))
                throw fail("options", $"letters must run from A without gaps (missing {Vocabulary.OptionLetters[i]})");
        return options;
    }

    static GuidelineAnnotations RequireGuideline(JsonElement root, string perspective, Func<string, string, DataException> fail)
    {
        var g = RequireField(root, "guideline", fail);
        if (g.ValueKind != JsonValueKind.Object) throw fail("guideline", $"expected an object, got {g.ValueKind}");
        foreach (var p in g.EnumerateObject())
            if (!KnownGuidelineFields.Contains(p.Name)) throw fail($"guideline.{p.Name}", "unknown field");
        var nested = (string field, string problem) => fail($"guideline.{field}", problem);
        var findings = RequireStringArray(g, "key_findings", nested, allowEmpty: false);
        var steps = RequireStringArray(g, "guideline_steps", nested, allowEmpty: false);
        double? pretest = null;
        if (g.TryGetProperty("pretest_probability", out var p0) && p0.ValueKind != JsonValueKind.Null)
        {
            if (p0.ValueKind != JsonValueKind.Number) throw nested("pretest_probability", $"expected a number, got {p0.ValueKind}");
            double p = p0.GetDouble();
            if (!(p > 0 && p < 1)) throw nested("pretest_probability", $"{p} is not a probability in (0, 1)");
            pretest = p;
        }
        if (perspective == Vocabulary.Bayesian && pretest is null)
            throw nested("pretest_probability", "missing (required for the bayesian perspective)");
        return new GuidelineAnnotations(findings, steps, pretest);
    }
}
