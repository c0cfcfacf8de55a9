using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using MMedExpert.Core.IO;

namespace MMedExpert.Core.Training;

/// <summary>
/// Training metrics as JSON lines (<c>{"step":…,"loss":…,"lr":…,"grad_norm":…,"tokens_per_s":…,…}</c>), one line per
/// step, flushed as written so a crash loses at most the line being written. An append-only log cannot be written
/// through a temp file; instead, resuming rewrites the file (atomically) without the lines after the resumed step and
/// without a torn last line, then appends.
/// </summary>
public sealed class MetricsWriter : IDisposable
{
    readonly StreamWriter writer;
    public string Path { get; }

    MetricsWriter(string path, bool append)
    {
        Path = path;
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!);
        writer = new StreamWriter(new FileStream(path, append ? FileMode.Append : FileMode.Create, FileAccess.Write, FileShare.Read), new UTF8Encoding(false));
    }

    /// <summary>A new log (an existing file is replaced).</summary>
    public static MetricsWriter Create(string path)
    {
        AtomicFile.WriteAllText(path, "");
        return new MetricsWriter(path, append: true);
    }

    /// <summary>Keeps the lines with step ≤ <paramref name="step"/> and appends after them.</summary>
    public static MetricsWriter Resume(string path, long step)
    {
        if (!File.Exists(path)) return Create(path);
        var kept = new StringBuilder();
        var text = File.ReadAllText(path);
        var lines = text.Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            var line = lines[i];
            if (line.Length == 0) continue;
            bool last = i == lines.Length - 1; // no newline after it: torn by a crash
            if (last) break;
            long lineStep;
            try
            {
                var node = JsonNode.Parse(line) as JsonObject ?? throw new JsonException("not an object");
                lineStep = node["step"]?.GetValue<long>() ?? throw new JsonException("no \"step\"");
            }
            catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException)
            {
                throw new TrainingException($"{path}: line {i + 1}: not a metrics line ({e.Message})");
            }
            if (lineStep <= step) kept.Append(line).Append('\n');
        }
        AtomicFile.WriteAllText(path, kept.ToString());
        return new MetricsWriter(path, append: true);
    }

    /// <summary>Reads every line's fields (for tests, plots and reports).</summary>
    public static IReadOnlyList<JsonObject> Read(string path)
    {
        var list = new List<JsonObject>();
        int n = 0;
        foreach (var line in File.ReadLines(path))
        {
            n++;
            if (line.Length == 0) continue;
            try { list.Add(JsonNode.Parse(line) as JsonObject ?? throw new JsonException("not an object")); }
            catch (JsonException e) { throw new TrainingException($"{path}: line {n}: {e.Message}"); }
        }
        return list;
    }

    public void Write(long step, double loss, double lr, double gradNorm, double tokensPerSecond, IReadOnlyDictionary<string, object?>? extra = null)
    {
        var o = new JsonObject
        {
            ["step"] = step,
            ["loss"] = Number(loss),
            ["lr"] = Number(lr),
            ["grad_norm"] = Number(gradNorm),
            ["tokens_per_s"] = Number(tokensPerSecond),
        };
        if (extra != null)
            foreach (var (k, v) in extra)
                o[k] = Node(v);
        WriteLine(o);
    }

    /// <summary>Writes arbitrary fields; "step" is required.</summary>
    public void Write(IReadOnlyDictionary<string, object?> fields)
    {
        if (!fields.ContainsKey("step")) throw new ArgumentException("a metrics line needs a \"step\" field", nameof(fields));
        var o = new JsonObject();
        foreach (var (k, v) in fields) o[k] = Node(v);
        WriteLine(o);
    }

    static JsonNode? Node(object? v) => v switch
    {
        null => null,
        double d => Number(d),
        float f => Number(f),
        JsonNode n => n.DeepClone(),
        _ => JsonSerializer.SerializeToNode(v),
    };

    /// <summary>JSON has no NaN/Infinity: those are written as strings so a diverged run stays readable.</summary>
    static JsonNode? Number(double d) => double.IsFinite(d) ? JsonValue.Create(d) : JsonValue.Create(d.ToString(System.Globalization.CultureInfo.InvariantCulture));

    void WriteLine(JsonObject o)
    {
        writer.Write(o.ToJsonString());
        writer.Write('\n');
        writer.Flush();
    }

    public void Dispose() => writer.Dispose();
}
