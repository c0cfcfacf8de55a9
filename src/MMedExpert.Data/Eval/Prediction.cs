using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace MMedExpert.Data.Eval;

/// <summary>One line of predictions.jsonl: the raw output and what was made of it.</summary>
public sealed record Prediction(
    string Id,
    string Answer,
    string? Predicted,
    bool Correct,
    bool StrictFormat,
    ExtractionMethod Method,
    string Output,
    IReadOnlyDictionary<string, string> Groups)
{
    static readonly JsonWriterOptions Options = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static string MethodName(ExtractionMethod m) => m switch
    {
        ExtractionMethod.AnswerTag => "answer_tag",
        ExtractionMethod.LoneLetter => "lone_letter",
        ExtractionMethod.OptionText => "option_text",
        _ => "none",
    };

    public string ToJsonLine()
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, Options))
        {
            w.WriteStartObject();
            w.WriteString("id", Id);
            w.WriteString("answer", Answer);
            if (Predicted is null) w.WriteNull("predicted"); else w.WriteString("predicted", Predicted);
            w.WriteBoolean("correct", Correct);
            w.WriteBoolean("strict_format", StrictFormat);
            w.WriteString("extraction", MethodName(Method));
            w.WriteStartObject("groups");
            foreach (var (k, v) in Groups.OrderBy(kv => kv.Key, StringComparer.Ordinal)) w.WriteString(k, v);
            w.WriteEndObject();
            w.WriteString("output", Output);
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(ms.ToArray());
    }
}
