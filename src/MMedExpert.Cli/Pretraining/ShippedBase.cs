using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;
using MMedExpert.Core;
using MMedExpert.Core.IO;

namespace MMedExpert.Cli.Pretraining;

/// <summary>How the shipped base was made and what it reads: written by <c>mmx pretrain</c> beside the weights.</summary>
public sealed record ShippedBaseProvenance
{
    public string Command { get; init; } = "";
    public string Commit { get; init; } = "";
    public long Seed { get; init; }
    public ulong DataSeed { get; init; }
    public int Items { get; init; }
    public double Difficulty { get; init; }
    public string Preset { get; init; } = "";
    public int VisionSteps { get; init; }
    /// <summary>Whether the warmed tower stayed frozen during pretraining (null: written before the setting existed, when it was trained).</summary>
    public bool? FreezeVision { get; init; }
    public int Steps { get; init; }
    public int BatchSize { get; init; }
    public double LearningRate { get; init; }
    public string Dtype { get; init; } = "";
    /// <summary>Summed over every session of a resumed run.</summary>
    public double WallSeconds { get; init; }
    public double? FinalLoss { get; init; }
    public int ReadoutItems { get; init; }
    /// <summary>Per finding (8 image, 8 clinical): read right in the trace's first step on held-out items (null: none read).</summary>
    public Dictionary<string, double?> FindingAccuracy { get; init; } = new();
    public double FindingQuestionAccuracy { get; init; }
    /// <summary>Share of diagnosis answers in the strict &lt;think&gt;…&lt;/think&gt;&lt;answer&gt;…&lt;/answer&gt; format.</summary>
    public double FormatRate { get; init; }
    /// <summary>The diagnosis, which pretraining never teaches: should be near chance (about 20 %).</summary>
    public double DiagnosisAccuracy { get; init; }
    /// <summary>SHA-256 (lower-case hex) of <see cref="ShippedBase.WeightsFile"/>.</summary>
    public string Sha256 { get; init; } = "";
}

/// <summary>
/// The pretrained embedded base in the repository (models/medsynth-base/: bf16 weights, config, tokenizer, processor
/// config, provenance.json). The pipeline uses it by default, after checking the weights against the provenance's SHA-256.
/// </summary>
public static class ShippedBase
{
    public const string WeightsFile = "model.safetensors", ProvenanceFile = "provenance.json";
    static readonly JsonSerializerOptions Json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    /// <summary>models/medsynth-base of the checkout this mmx was built from (found by walking up to MMedExpert.sln).</summary>
    public static string DefaultDir
    {
        get
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
                if (File.Exists(Path.Combine(dir.FullName, "MMedExpert.sln"))) return Path.Combine(dir.FullName, "models", "medsynth-base");
            return Path.GetFullPath(Path.Combine("models", "medsynth-base"));
        }
    }

    public static string Sha256(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexString(SHA256.HashData(stream)).ToLowerInvariant();
    }

    public static void WriteProvenance(string dir, ShippedBaseProvenance provenance) =>
        AtomicFile.WriteAllText(Path.Combine(dir, ProvenanceFile), JsonSerializer.Serialize(provenance, Json) + "\n");

    public static ShippedBaseProvenance ReadProvenance(string dir)
    {
        string path = Path.Combine(dir, ProvenanceFile);
        if (!File.Exists(path)) throw new MmxException($"{path}: file not found (a shipped base carries its provenance; make one with `mmx pretrain`)");
        try { return JsonSerializer.Deserialize<ShippedBaseProvenance>(File.ReadAllText(path), Json) ?? throw new JsonException("null"); }
        catch (JsonException e) { throw new MmxException($"{path}: {e.Message}"); }
    }

    /// <summary>Throws, naming the file, when the weights are missing or do not match the provenance's SHA-256.</summary>
    public static ShippedBaseProvenance Verify(string dir)
    {
        if (!Directory.Exists(dir)) throw new MmxException($"{dir}: base folder not found");
        var provenance = ReadProvenance(dir);
        string weights = Path.Combine(dir, WeightsFile);
        if (!File.Exists(weights)) throw new MmxException($"{weights}: file not found");
        string actual = Sha256(weights);
        if (actual != provenance.Sha256)
            throw new MmxException($"{weights}: SHA-256 {actual} does not match {provenance.Sha256} in {ProvenanceFile} (a corrupt or replaced file; git checkout it, or rerun `mmx pretrain`)");
        return provenance;
    }
}
