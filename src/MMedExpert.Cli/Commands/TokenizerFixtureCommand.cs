using System.CommandLine;
using System.Text.Encodings.Web;
using System.Text.Json;
using MMedExpert.Core.IO;
using MMedExpert.Core.Tokenization;

namespace MMedExpert.Cli.Commands;

/// <summary>
/// `mmx tokenizer-fixture` (hidden; maintainers only): builds tests/fixtures/qwen2-tokenizer from the shared Qwen2
/// fixture. It checks the full tokenizer against every reference line, picks a diverse slice (greedy coverage of
/// characters, special tokens, whitespace runs and words, shorter lines first on ties), writes the slice and a
/// tokenizer.json reduced by <see cref="VocabularyReducer"/> to the merges the slice uses, reloads the reduced file and
/// checks it reproduces every slice line exactly.
/// </summary>
public static class TokenizerFixtureCommand
{
    public static Command Create()
    {
        var tokenizer = new Option<string>("--tokenizer") { Description = "full tokenizer.json", Required = true };
        var reference = new Option<string>("--reference") { Description = "reference JSON lines {\"text\",\"ids\"}", Required = true };
        var output = new Option<string>("--out") { Description = "output folder", Required = true };
        var lines = new Option<int>("--lines") { Description = "slice size", DefaultValueFactory = _ => 150 };
        var also = new Option<string[]>("--also") { Description = "JSON-lines files whose texts the reduced tokenizer must also reproduce (e.g. the chat tests' prompts)" };
        var cmd = new Command("tokenizer-fixture", "Write a parity slice and a reduced tokenizer.json reproducing it (for tests/fixtures)") { Hidden = true };
        foreach (var o in new Option[] { tokenizer, reference, output, lines, also }) cmd.Options.Add(o);
        cmd.SetAction(parse =>
        {
            var full = Qwen2Tokenizer.FromFile(parse.GetValue(tokenizer)!);
            string refPath = parse.GetValue(reference)!;
            var rows = File.ReadLines(refPath).Where(l => l.Length > 0).Select((l, i) =>
            {
                using var doc = JsonDocument.Parse(l);
                var r = doc.RootElement;
                return (Text: r.GetProperty("text").GetString()!, Ids: r.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray());
            }).ToList();
            for (int i = 0; i < rows.Count; i++)
                if (!full.Encode(rows[i].Text).SequenceEqual(rows[i].Ids))
                    throw new TokenizerException($"{refPath}: line {i + 1}: the full tokenizer does not reproduce the reference ids");

            var slice = PickDiverse(full, rows, parse.GetValue(lines));
            string dir = parse.GetValue(output)!;
            string reducedPath = Path.Combine(dir, "tokenizer.json");
            var extra = (parse.GetValue(also) ?? []).SelectMany(f => File.ReadLines(f).Where(l => l.Length > 0)
                .Select(l => { using var d = JsonDocument.Parse(l); return d.RootElement.GetProperty("text").GetString()!; })).ToList();
            TokenizerFile.Write(reducedPath, VocabularyReducer.Reduce(full, slice.Select(r => r.Text).Concat(extra), reducedPath));
            var options = new JsonSerializerOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
            AtomicFile.WriteAllText(Path.Combine(dir, "reference-slice.jsonl"),
                string.Concat(slice.Select(r => JsonSerializer.Serialize(new { text = r.Text, ids = r.Ids }, options) + "\n")));

            var reduced = Qwen2Tokenizer.FromFile(reducedPath);
            int same = slice.Count(r => reduced.Encode(r.Text).SequenceEqual(r.Ids));
            int extraSame = extra.Count(t => reduced.Encode(t).SequenceEqual(full.Encode(t)));
            Console.WriteLine($"{slice.Count} lines, {reduced.Definition.Vocab.Count} vocab entries, {reduced.Definition.Merges.Count} merges, " +
                              $"{new FileInfo(reducedPath).Length} bytes; reduced tokenizer reproduces {same}/{slice.Count} slice lines, {extraSame}/{extra.Count} extra texts");
            return same == slice.Count && extraSame == extra.Count ? 0 : 1;
        });
        return cmd;
    }

    static List<(string Text, int[] Ids)> PickDiverse(Qwen2Tokenizer tok, List<(string Text, int[] Ids)> rows, int count)
    {
        HashSet<string> Features(string text)
        {
            var f = new HashSet<string>(StringComparer.Ordinal);
            foreach (var rune in text.EnumerateRunes()) f.Add("c:" + rune);
            foreach (var t in tok.AddedTokens) if (text.Contains(t.Content, StringComparison.Ordinal)) f.Add("t:" + t.Content);
            string nfc = TextNormalizer.Nfc(text);
            foreach (var (s, len) in Qwen2PreTokenizer.Split(nfc))
            {
                string piece = nfc.Substring(s, len);
                f.Add((string.IsNullOrWhiteSpace(piece) ? "w:" : "p:") + piece);
            }
            return f;
        }
        static int Weight(string feature) => feature[0] switch { 'c' or 't' => 20, 'w' => 5, _ => 1 };

        var features = rows.Select(r => Features(r.Text)).ToList();
        var covered = new HashSet<string>(StringComparer.Ordinal);
        var picked = new List<int>();
        var left = Enumerable.Range(0, rows.Count).ToHashSet();
        while (picked.Count < count && left.Count > 0)
        {
            int best = left.OrderByDescending(i => features[i].Where(f => !covered.Contains(f)).Sum(Weight))
                           .ThenBy(i => rows[i].Text.Length).ThenBy(i => i).First();
            picked.Add(best);
            left.Remove(best);
            covered.UnionWith(features[best]);
        }
        return picked.Order().Select(i => rows[i]).ToList();
    }
}
