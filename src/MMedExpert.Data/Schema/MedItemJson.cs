using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace MMedExpert.Data.Schema;

/// <summary>
/// Writes items as JSON lines with a fixed field order and number format, so the same items always give the same bytes.
/// </summary>
public static class MedItemJson
{
    // Relaxed escaping keeps "°C" and "≥" readable in the file; quotes and control characters are still escaped.
    static readonly JsonWriterOptions Options = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping, Indented = false };

    public static string ToLine(MedItem item)
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, Options))
        {
            w.WriteStartObject();
            w.WriteString("id", item.Id);
            w.WriteString("specialty", item.Specialty);
            w.WriteStartArray("images");
            foreach (var image in item.Images) w.WriteStringValue(image);
            w.WriteEndArray();
            w.WriteString("question", item.Question);
            w.WriteStartObject("options");
            foreach (var letter in Vocabulary.OptionLetters)
                if (item.Options.TryGetValue(letter, out var text)) w.WriteString(letter, text);
            w.WriteEndObject();
            w.WriteString("answer", item.Answer);
            w.WriteString("reasoning", item.Reasoning);
            w.WriteString("perspective", item.Perspective);
            w.WriteStartObject("guideline");
            w.WriteStartArray("key_findings");
            foreach (var f in item.Guideline.KeyFindings) w.WriteStringValue(f);
            w.WriteEndArray();
            w.WriteStartArray("guideline_steps");
            foreach (var s in item.Guideline.GuidelineSteps) w.WriteStringValue(s);
            w.WriteEndArray();
            if (item.Guideline.PretestProbability is double p) w.WriteNumber("pretest_probability", Math.Round(p, 4));
            else w.WriteNull("pretest_probability");
            w.WriteEndObject();
            w.WriteString("split", item.Split);
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    /// <summary>All items, one per line, each line ending in '\n'.</summary>
    public static string ToJsonLines(IEnumerable<MedItem> items)
    {
        var sb = new StringBuilder();
        foreach (var item in items) sb.Append(ToLine(item)).Append('\n');
        return sb.ToString();
    }
}
