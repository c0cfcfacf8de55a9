using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using MMedExpert.Core;
using MMedExpert.Core.IO;

namespace MMedExpert.Cli.Pipeline;

/// <summary>One step of the pipeline: reads earlier stages' folders, writes its own, and lists the files it produced.</summary>
public sealed record Stage(string Name, string Description, Func<StageContext, IReadOnlyList<string>> Run);

/// <summary>What a stage gets: the run folder, the configuration, and a place to report progress.</summary>
public sealed record StageContext(string RunDir, string ConfigJson, Action<string> Log)
{
    public string PathOf(params string[] parts) => Path.Combine(new[] { RunDir }.Concat(parts).ToArray());
}

public sealed class PipelineException(string message) : MmxException(message);

/// <summary>
/// Runs stages in order and makes them resumable: a finished stage leaves <c>stages/NAME.json</c> recording the
/// configuration hash and the size and SHA-256 of every file it produced. A rerun skips a stage only when that record
/// exists, the configuration is unchanged and every listed file is still there with the same content; otherwise the
/// stage and every later one run again. <c>--from</c> forces a rerun from a named stage.
/// </summary>
public sealed class StageRunner(string runDir, string configJson, IReadOnlyList<Stage> stages)
{
    public sealed record StageRecord(string Stage, string ConfigHash, double Seconds, DateTime FinishedUtc, List<OutputFile> Outputs);
    public sealed record OutputFile(string Path, long Bytes, string Sha256);

    static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    public string RecordPath(string stage) => RecordPathOf(runDir, stage);
    public static string RecordPathOf(string runDir, string stage) => Path.Combine(runDir, "stages", stage + ".json");

    public IReadOnlyDictionary<string, double> Run(string? from, Action<string> log)
    {
        if (from != null && stages.All(s => s.Name != from))
            throw new PipelineException($"--from {from}: no such stage (stages: {string.Join(", ", stages.Select(s => s.Name))})");
        string hash = Hash(Encoding.UTF8.GetBytes(configJson));
        Directory.CreateDirectory(Path.Combine(runDir, "stages"));
        var timings = new Dictionary<string, double>();
        bool rerunRest = false;
        foreach (var stage in stages)
        {
            rerunRest |= stage.Name == from;
            string why = "rerun requested";
            var done = rerunRest ? null : Completed(stage.Name, hash, out why);
            if (done != null)
            {
                log($"[{stage.Name}] up to date ({done.Outputs.Count} files checked), skipped");
                timings[stage.Name] = done.Seconds;
                continue;
            }
            if (!rerunRest) log($"[{stage.Name}] {why}");
            // A stage rerun for a changed configuration or by request must not resume stale checkpoints
            // (work/<stage>*); one that was interrupted (no record yet) resumes from them.
            if (why != "not run yet") ClearWork(stage.Name);
            rerunRest = true; // a rerun stage invalidates everything after it
            File.Delete(RecordPath(stage.Name));
            log($"[{stage.Name}] {stage.Description}");
            var sw = Stopwatch.StartNew();
            var outputs = stage.Run(new StageContext(runDir, configJson, m => log($"[{stage.Name}] {m}")));
            double seconds = sw.Elapsed.TotalSeconds;
            var record = new StageRecord(stage.Name, hash, seconds, DateTime.UtcNow,
                outputs.Select(p => Describe(Path.GetFullPath(p))).ToList());
            AtomicFile.WriteAllText(RecordPath(stage.Name), JsonSerializer.Serialize(record, Json));
            timings[stage.Name] = seconds;
            log($"[{stage.Name}] done in {seconds:F1} s");
        }
        return timings;
    }

    void ClearWork(string stage)
    {
        string work = Path.Combine(runDir, "work");
        if (!Directory.Exists(work)) return;
        foreach (var d in Directory.GetDirectories(work, stage + "*")) Directory.Delete(d, recursive: true);
    }

    StageRecord? Completed(string stage, string hash, out string why)
    {
        why = "not run yet";
        string path = RecordPath(stage);
        if (!File.Exists(path)) return null;
        StageRecord? record;
        try { record = JsonSerializer.Deserialize<StageRecord>(File.ReadAllText(path)); }
        catch (JsonException) { why = "stage record unreadable, rerunning"; return null; }
        if (record == null) { why = "stage record empty, rerunning"; return null; }
        if (record.ConfigHash != hash) { why = "configuration changed, rerunning"; return null; }
        foreach (var o in record.Outputs)
        {
            string full = Path.Combine(runDir, o.Path);
            if (!File.Exists(full)) { why = $"output {o.Path} is missing, rerunning"; return null; }
            var info = new FileInfo(full);
            if (info.Length != o.Bytes || Hash(full) != o.Sha256) { why = $"output {o.Path} changed, rerunning"; return null; }
        }
        return record;
    }

    OutputFile Describe(string fullPath)
    {
        if (!File.Exists(fullPath)) throw new PipelineException($"stage output {fullPath} was not written");
        return new OutputFile(Path.GetRelativePath(runDir, fullPath), new FileInfo(fullPath).Length, Hash(fullPath));
    }

    static string Hash(byte[] bytes) => Convert.ToHexString(SHA256.HashData(bytes));
    static string Hash(string file)
    {
        using var s = File.OpenRead(file);
        return Convert.ToHexString(SHA256.HashData(s));
    }
}
