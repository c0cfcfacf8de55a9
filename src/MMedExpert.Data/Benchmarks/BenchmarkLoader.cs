namespace MMedExpert.Data.Benchmarks;

/// <summary>The benchmarks the evaluation harness reads.</summary>
public enum BenchmarkKind { MedSynth, MedXpertQaMm, OmniMedVqa }

/// <summary>One entry point for the CLI: benchmark name → loader.</summary>
public static class BenchmarkLoader
{
    public static readonly IReadOnlyDictionary<string, BenchmarkKind> Names = new Dictionary<string, BenchmarkKind>
    {
        ["medsynth"] = BenchmarkKind.MedSynth,
        ["medxpertqa-mm"] = BenchmarkKind.MedXpertQaMm,
        ["omnimedvqa"] = BenchmarkKind.OmniMedVqa,
    };

    public static BenchmarkKind Parse(string name) =>
        Names.TryGetValue(name, out var k) ? k
            : throw new DataException($"unknown benchmark '{name}' (known: {string.Join(", ", Names.Keys)})");

    /// <summary>Loads a benchmark; <paramref name="imageRoot"/> overrides where image paths are resolved from.</summary>
    public static IReadOnlyList<EvalItem> Load(BenchmarkKind kind, string path, string? imageRoot = null) => kind switch
    {
        BenchmarkKind.MedSynth => MedSynthBench.Load(path),
        BenchmarkKind.MedXpertQaMm => MedXpertQaLoader.Load(path, imageRoot),
        BenchmarkKind.OmniMedVqa => OmniMedVqaLoader.Load(path, imageRoot),
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };
}
