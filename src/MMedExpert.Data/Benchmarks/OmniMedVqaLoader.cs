using System.Text.Json;
using MMedExpert.Data.Schema;

namespace MMedExpert.Data.Benchmarks;

/// <summary>
/// OmniMedVQA, open-access part (format facts and their sources in docs/benchmarks.md): one JSON file per source
/// data set under QA_information/Open-access/, each a JSON array of QA records with question_id, dataset,
/// question_type, question, gt_answer (the answer TEXT), image_path (relative to the OmniMedVQA root, e.g.
/// "Images/ACRIMA/…png"), option_A…option_D (C and D may be absent) and modality_type (one public file spells it
/// "modality"; both are read). The correct letter is the option whose text equals gt_answer (exactly after trimming,
/// else ignoring case and repeated white space). Images are resolved in <c>imageRoot</c>, else in the folder above
/// QA_information when the file lies under one, else next to the file.
/// </summary>
public static class OmniMedVqaLoader
{
    /// <summary>Loads one file, or every *.json file of a folder (ordinal name order).</summary>
    public static IReadOnlyList<EvalItem> Load(string path, string? imageRoot = null)
    {
        string[] files = Directory.Exists(path) ? Directory.GetFiles(path, "*.json").Order(StringComparer.Ordinal).ToArray()
            : File.Exists(path) ? [path] : throw new DataException($"{path}: file or folder not found");
        if (files.Length == 0) throw new DataException($"{path}: no .json files");
        var items = new List<EvalItem>();
        var seen = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var file in files) items.AddRange(LoadFile(file, imageRoot ?? DefaultRoot(file), seen));
        return items;
    }

    static string DefaultRoot(string file)
    {
        var dir = new DirectoryInfo(Path.GetDirectoryName(Path.GetFullPath(file))!);
        for (var d = dir; d != null; d = d.Parent)
            if (d.Name == "QA_information" && d.Parent != null) return d.Parent.FullName;
        return dir.FullName;
    }

    static IEnumerable<EvalItem> LoadFile(string file, string root, Dictionary<string, string> seen)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(File.ReadAllText(file)); }
        catch (JsonException e) { throw new DataException($"{file}: malformed JSON ({e.Message})"); }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Array) throw new DataException($"{file}: expected a JSON array of QA records, got {doc.RootElement.ValueKind}");
            var items = new List<EvalItem>();
            int index = 0;
            foreach (var e in doc.RootElement.EnumerateArray())
            {
                string where = $"{file}: item {index}";
                if (e.ValueKind != JsonValueKind.Object) throw new DataException($"{where}: expected an object");
                string id = new JsonFields(e, where).String("question_id", allowNumber: true);
                var f = new JsonFields(e, $"{where} ('{id}')");
                if (seen.TryGetValue(id, out var firstFile)) throw f.Fail("question_id", $"duplicate id (first in {firstFile})");
                seen[id] = file;

                var options = new Dictionary<string, string>(StringComparer.Ordinal);
                foreach (var letter in Vocabulary.OptionLetters.Take(4))
                    if (f.Has($"option_{letter}")) options[letter] = f.String($"option_{letter}");
                if (!options.ContainsKey("A")) throw f.Fail("option_A", "missing");
                if (!options.ContainsKey("B")) throw f.Fail("option_B", "missing");
                JsonFields.CheckLetters(options, problem => f.Fail("option_" + (options.ContainsKey("C") ? "D" : "C"), problem));

                string gt = f.String("gt_answer");
                string answer = Match(gt, options, f);
                string modality = f.Has("modality_type") ? f.String("modality_type")
                    : f.Has("modality") ? f.String("modality") : throw f.Fail("modality_type", "missing");

                string rel = f.String("image_path");
                string full = Path.GetFullPath(Path.Combine(root, rel.TrimStart('/')));
                if (!File.Exists(full)) throw f.Fail("image_path", $"image not found: '{rel}' (looked for {full})");

                items.Add(new EvalItem(id, f.String("question"), options, answer, [full], "omnimedvqa",
                    new Dictionary<string, string>
                    {
                        [GroupKeys.Modality] = modality,
                        [GroupKeys.QuestionType] = f.String("question_type"),
                        [GroupKeys.Dataset] = f.String("dataset"),
                    }));
                index++;
            }
            return items;
        }
    }

    static string Norm(string s) => string.Join(' ', s.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries)).ToLowerInvariant();

    static string Match(string gt, Dictionary<string, string> options, JsonFields f)
    {
        var exact = options.Where(kv => kv.Value.Trim() == gt.Trim()).Select(kv => kv.Key).ToList();
        if (exact.Count == 0) exact = options.Where(kv => Norm(kv.Value) == Norm(gt)).Select(kv => kv.Key).ToList();
        return exact.Count switch
        {
            1 => exact[0],
            0 => throw f.Fail("gt_answer", $"'{gt}' matches none of the options ({string.Join(" | ", options.Select(kv => $"{kv.Key}: {kv.Value}"))})"),
            _ => throw f.Fail("gt_answer", $"'{gt}' matches several options ({string.Join(", ", exact)})"),
        };
    }
}
