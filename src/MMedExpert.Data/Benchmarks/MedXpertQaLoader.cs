using System.Text.Json;

namespace MMedExpert.Data.Benchmarks;

/// <summary>
/// MedXpertQA MM (JSON lines; format facts and their sources in docs/benchmarks.md): id, question (choices already
/// spelled out in the text), options as a dict {"A": …} or a list of {letter, content}, label as a letter or a
/// one-element list, images as file names, medical_task, body_system, question_type. Options A–E. Image names are
/// resolved in <c>imageRoot</c>, else in an images/ folder next to the file, else next to the file. Unknown fields are
/// ignored (the public files may carry more); every required field is checked.
/// </summary>
public static class MedXpertQaLoader
{
    public static IReadOnlyList<EvalItem> Load(string path, string? imageRoot = null)
    {
        if (!File.Exists(path)) throw new DataException($"{path}: file not found");
        string dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        string root = imageRoot ?? (Directory.Exists(Path.Combine(dir, "images")) ? Path.Combine(dir, "images") : dir);
        var items = new List<EvalItem>();
        var seen = new Dictionary<string, int>(StringComparer.Ordinal);
        int lineNo = 0;
        foreach (var line in File.ReadLines(path))
        {
            lineNo++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            JsonDocument doc;
            try { doc = JsonDocument.Parse(line); }
            catch (JsonException e) { throw new DataException($"{path}:{lineNo}: malformed JSON ({e.Message})"); }
            using (doc)
            {
                if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new DataException($"{path}:{lineNo}: expected a JSON object");
                string where = $"{path}:{lineNo}";
                var f0 = new JsonFields(doc.RootElement, where);
                string id = f0.String("id");
                var f = new JsonFields(doc.RootElement, $"{where}: item '{id}'");
                if (seen.TryGetValue(id, out int first)) throw f.Fail("id", $"duplicate id (first on line {first})");
                seen[id] = lineNo;
                var options = Options(f);
                string label = Label(f, options);
                items.Add(new EvalItem(id, f.String("question"), options, label, Images(f, root), "medxpertqa-mm",
                    new Dictionary<string, string>
                    {
                        [GroupKeys.BodySystem] = f.String("body_system"),
                        [GroupKeys.MedicalTask] = f.String("medical_task"),
                        [GroupKeys.QuestionType] = f.String("question_type"),
                    },
                    QuestionListsOptions: true));
            }
        }
        return items;
    }

    static Dictionary<string, string> Options(JsonFields f)
    {
        var v = f.Get("options");
        var options = new Dictionary<string, string>(StringComparer.Ordinal);
        void Add(string letter, JsonElement text)
        {
            if (text.ValueKind != JsonValueKind.String || text.GetString()!.Trim().Length == 0)
                throw f.Fail("options", $"option {letter} must be a non-empty string");
            if (!options.TryAdd(letter, text.GetString()!)) throw f.Fail("options", $"option {letter} appears twice");
        }
        if (v.ValueKind == JsonValueKind.Object)
            foreach (var p in v.EnumerateObject()) Add(p.Name, p.Value);
        else if (v.ValueKind == JsonValueKind.Array)
        {
            int i = 0;
            foreach (var e in v.EnumerateArray())
            {
                if (e.ValueKind != JsonValueKind.Object || !e.TryGetProperty("letter", out var l) || l.ValueKind != JsonValueKind.String
                    || !e.TryGetProperty("content", out var c))
                    throw f.Fail("options", $"element {i} must be an object {{\"letter\": …, \"content\": …}}");
                Add(l.GetString()!, c);
                i++;
            }
        }
        else throw f.Fail("options", $"expected a dict {{\"A\": …}} or a list of {{letter, content}}, got {v.ValueKind}");
        JsonFields.CheckLetters(options, problem => f.Fail("options", problem));
        return options;
    }

    static string Label(JsonFields f, Dictionary<string, string> options)
    {
        var v = f.Get("label");
        string? label = v.ValueKind switch
        {
            JsonValueKind.String => v.GetString(),
            JsonValueKind.Array when v.GetArrayLength() == 1 && v[0].ValueKind == JsonValueKind.String => v[0].GetString(),
            _ => throw f.Fail("label", $"expected a letter or a one-element list of a letter, got {v.GetRawText()}"),
        };
        label = label!.Trim();
        if (!options.ContainsKey(label)) throw f.Fail("label", $"'{label}' is not one of the options ({string.Join(", ", options.Keys)})");
        return label;
    }

    static List<string> Images(JsonFields f, string root)
    {
        var v = f.Get("images");
        if (v.ValueKind != JsonValueKind.Array || v.GetArrayLength() == 0) throw f.Fail("images", "expected a non-empty list of file names");
        var paths = new List<string>();
        foreach (var e in v.EnumerateArray())
        {
            if (e.ValueKind != JsonValueKind.String || e.GetString()!.Trim().Length == 0) throw f.Fail("images", "file names must be non-empty strings");
            string full = Path.GetFullPath(Path.Combine(root, e.GetString()!));
            if (!File.Exists(full)) throw f.Fail("images", $"image not found: '{e.GetString()}' (looked for {full})");
            paths.Add(full);
        }
        return paths;
    }
}
