using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using MMedExpert.Algebra.Merge;
using TorchSharp;

namespace MMedExpert.Core.Merging;

/// <summary>
/// The settings of `mmx merge`, each optional so that a JSON config file and command-line options can be layered
/// (options given on the command line win). Field names in the file: base, experts, method, density, lambda, drop_rate,
/// conflict_strength, consensus, weights, seeds, seed, out, as_adapter, rank, dtype (snake_case, camelCase or kebab-case).
/// Relative paths in a file are relative to the file's folder.
/// </summary>
public sealed record MergeSettings(
    string? Base = null,
    string[]? Experts = null,
    string? Method = null,
    double? Density = null,
    double? Lambda = null,
    double? DropRate = null,
    double? ConflictStrength = null,
    int? Consensus = null,
    double[]? Weights = null,
    ulong[]? Seeds = null,
    ulong? Seed = null,
    string? Out = null,
    bool? AsAdapter = null,
    int? Rank = null,
    string? DType = null)
{
    /// <summary>These settings, with every field that <paramref name="over"/> sets taken from it.</summary>
    public MergeSettings Overlay(MergeSettings over) => new(
        over.Base ?? Base, over.Experts ?? Experts, over.Method ?? Method, over.Density ?? Density, over.Lambda ?? Lambda,
        over.DropRate ?? DropRate, over.ConflictStrength ?? ConflictStrength, over.Consensus ?? Consensus,
        over.Weights ?? Weights, over.Seeds ?? Seeds, over.Seed ?? Seed, over.Out ?? Out, over.AsAdapter ?? AsAdapter,
        over.Rank ?? Rank, over.DType ?? DType);

    /// <summary>The request these settings describe (defaults: conflict_aware, density 0.2, λ 1, DARE p 0.9, rank 16).
    /// <paramref name="source"/> names where the settings came from, for error messages.</summary>
    public MergeRequest ToRequest(string source)
    {
        if (Experts is not { Length: > 0 }) throw new MergeException($"{source}: experts: at least one expert adapter folder is needed");
        if (Out is null) throw new MergeException($"{source}: out: the output folder is missing");
        MergeMethod method;
        try { method = MergeMethodModule.parse(Method ?? MergeMethodModule.name(MergeConfigModule.defaults.Method)); }
        catch (ArgumentException e) { throw new MergeException($"{source}: method: {e.Message.Split(" (Parameter")[0]}"); }
        var d = MergeConfigModule.defaults;
        var config = new MergeConfig(method, Density ?? d.Density, Lambda ?? d.Lambda, DropRate ?? d.DropRate,
            ConflictStrength ?? d.ConflictStrength, Consensus ?? d.ConsensusMinExperts, Weights ?? Array.Empty<double>(),
            Seeds ?? Array.Empty<ulong>());
        var problems = MergeConfigModule.problems(Experts.Length, method == MergeMethod.Dare || method == MergeMethod.DareTies
            ? (Seeds == null ? WithAnySeeds(config, Experts.Length) : config) : config);
        if (!problems.IsEmpty) throw new MergeException($"{source}: {string.Join("; ", problems)}");
        return new MergeRequest(Experts, config, Out, Base, AsAdapter ?? false, Rank ?? 16, Seed ?? 0, ParseDType(DType, source));
    }

    // Seeds left out are derived per expert by the driver; validate the rest as if they were given.
    static MergeConfig WithAnySeeds(MergeConfig c, int n) =>
        new(c.Method, c.Density, c.Lambda, c.DropRate, c.ConflictStrength, c.ConsensusMinExperts, c.Weights, new ulong[n]);

    static torch.ScalarType? ParseDType(string? text, string source) => text?.ToLowerInvariant() switch
    {
        null => null,
        "f32" or "float32" or "fp32" => torch.ScalarType.Float32,
        "bf16" or "bfloat16" => torch.ScalarType.BFloat16,
        "f16" or "float16" or "fp16" => torch.ScalarType.Float16,
        "f64" or "float64" => torch.ScalarType.Float64,
        _ => throw new MergeException($"{source}: dtype: '{text}' is not one of f32, bf16, f16, f64"),
    };

    /// <summary>Reads a JSON merge config; unknown fields and wrong types are errors naming the file and field.</summary>
    public static MergeSettings Load(string path)
    {
        path = Path.GetFullPath(path);
        if (!File.Exists(path)) throw new MergeException($"{path}: merge config not found");
        JsonObject root;
        try { root = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new MergeException($"{path}: a merge config is a JSON object"); }
        catch (JsonException e) { throw new MergeException($"{path}: invalid JSON: {e.Message}", e); }
        string dir = Path.GetDirectoryName(path)!;
        string Resolve(string p) => Path.GetFullPath(Path.Combine(dir, p));
        var s = new MergeSettings();
        foreach (var (key, node) in root)
        {
            string field = key.Replace("_", "").Replace("-", "").ToLowerInvariant();
            string where = $"{path}: {key}";
            s = field switch
            {
                "base" => s with { Base = Resolve(Str(node, where)) },
                "experts" => s with { Experts = Items(node, where).Select(n => Resolve(Str(n, where))).ToArray() },
                "method" => s with { Method = Str(node, where) },
                "density" => s with { Density = Num(node, where) },
                "lambda" => s with { Lambda = Num(node, where) },
                "droprate" => s with { DropRate = Num(node, where) },
                "conflictstrength" => s with { ConflictStrength = Num(node, where) },
                "consensus" => s with { Consensus = checked((int)Num(node, where)) },
                "weights" => s with { Weights = Items(node, where).Select(n => Num(n, where)).ToArray() },
                "seeds" => s with { Seeds = Items(node, where).Select(n => Seed64(n, where)).ToArray() },
                "seed" => s with { Seed = Seed64(node, where) },
                "out" => s with { Out = Resolve(Str(node, where)) },
                "asadapter" => s with { AsAdapter = node is JsonValue v && v.TryGetValue<bool>(out var b) ? b : throw new MergeException($"{where}: must be true or false") },
                "rank" => s with { Rank = checked((int)Num(node, where)) },
                "dtype" => s with { DType = Str(node, where) },
                _ => throw new MergeException($"{where}: unknown field (expected base, experts, method, density, lambda, drop_rate, conflict_strength, consensus, weights, seeds, seed, out, as_adapter, rank, dtype)"),
            };
        }
        return s;
    }

    static string Str(JsonNode? n, string where) =>
        n is JsonValue v && v.TryGetValue<string>(out var s) ? s : throw new MergeException($"{where}: must be a string");

    static double Num(JsonNode? n, string where) =>
        n is JsonValue v && v.TryGetValue<double>(out var d) && double.IsFinite(d) ? d : throw new MergeException($"{where}: must be a number");

    static ulong Seed64(JsonNode? n, string where) =>
        n is JsonValue v && (v.TryGetValue<ulong>(out var u) || (v.TryGetValue<string>(out var s) && ulong.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out u)))
            ? u : throw new MergeException($"{where}: must be a non-negative integer");

    static JsonArray Items(JsonNode? n, string where) => n as JsonArray ?? throw new MergeException($"{where}: must be an array");
}
