using System.Text;
using System.Text.Json;
using MMedExpert.Algebra.Metrics;

namespace MMedExpert.Data.Eval;

/// <summary>
/// What an evaluation measured: accuracy with its bootstrap interval, the rate of outputs not in the strict format,
/// the rate of outputs without an extractable answer, accuracy by each grouping field, and how answers were found.
/// </summary>
public sealed record EvalResults(
    string Benchmark,
    Score Overall,
    double InvalidFormatRate,
    double NoAnswerRate,
    IReadOnlyDictionary<string, GroupScore[]> ByGroup,
    IReadOnlyDictionary<string, int> ExtractionMethods,
    int Resumed,
    BootstrapSpec Bootstrap)
{
    static double R(double v) => Math.Round(v, 6);

    static void WriteScore(Utf8JsonWriter w, Score s)
    {
        w.WriteNumber("n", s.N);
        w.WriteNumber("correct", s.Correct);
        w.WriteNumber("accuracy", R(s.Accuracy));
        w.WriteStartObject("ci95");
        w.WriteNumber("low", R(s.Ci.Low));
        w.WriteNumber("high", R(s.Ci.High));
        w.WriteEndObject();
    }

    public string ToJson()
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("benchmark", Benchmark);
            WriteScore(w, Overall);
            w.WriteNumber("invalid_format_rate", R(InvalidFormatRate));
            w.WriteNumber("no_answer_rate", R(NoAnswerRate));
            w.WriteStartObject("extraction");
            foreach (var (k, v) in ExtractionMethods) w.WriteNumber(k, v);
            w.WriteEndObject();
            w.WriteStartObject("by_group");
            foreach (var (field, groups) in ByGroup)
            {
                w.WriteStartObject(field);
                foreach (var g in groups)
                {
                    w.WriteStartObject(g.Group);
                    WriteScore(w, g.Score);
                    w.WriteEndObject();
                }
                w.WriteEndObject();
            }
            w.WriteEndObject();
            w.WriteStartObject("bootstrap");
            w.WriteNumber("resamples", Bootstrap.Resamples);
            w.WriteNumber("seed", Bootstrap.Seed);
            w.WriteNumber("level", Bootstrap.Level);
            w.WriteString("method", "percentile");
            w.WriteEndObject();
            w.WriteNumber("resumed", Resumed);
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(ms.ToArray()) + "\n";
    }
}
