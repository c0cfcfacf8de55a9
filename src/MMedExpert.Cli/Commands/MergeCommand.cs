using System.CommandLine;
using System.Globalization;
using MMedExpert.Algebra.Merge;
using MMedExpert.Core.Merging;
using MMedExpert.Data.Eval;

namespace MMedExpert.Cli.Commands;

/// <summary>
/// `mmx merge`: merges PEFT LoRA experts into one model (HF safetensors) or one adapter (truncated SVD at --rank), with
/// conflicts.json (per-module and per-layer conflict diagnostics) and merge.json beside the weights.
/// </summary>
public static class MergeCommand
{
    public static Command Create()
    {
        var baseDir = new Option<string?>("--base") { Description = "Base model (HF folder, model.safetensors or its index); required for a merged model" };
        var experts = new Option<string[]>("--experts") { Description = "Expert PEFT adapter folders, comma-separated (or repeated)", AllowMultipleArgumentsPerToken = true };
        var method = new Option<string?>("--method") { Description = $"{string.Join("|", MergeMethodModule.names)} (default conflict_aware)" };
        var density = new Option<double?>("--density") { Description = "Fraction of each expert's entries kept by the magnitude trim (default 0.2)" };
        var lambda = new Option<double?>("--lambda") { Description = "Scale λ of the merged task vector (default 1)" };
        var dropRate = new Option<double?>("--drop-rate") { Description = "DARE drop probability p for dare/dare_ties (default 0.9)" };
        var strength = new Option<double?>("--conflict-strength") { Description = "conflict_aware: 0 = plain TIES, 1 = full conflict scale (default 1)" };
        var consensus = new Option<int?>("--consensus") { Description = "Keep only entries that at least K experts keep in their top-density (default 0 = off)" };
        var weights = new Option<string?>("--weights") { Description = "Per-expert weights, comma-separated, in expert order (default all 1)" };
        var seeds = new Option<string?>("--seeds") { Description = "Per-expert DARE seeds, comma-separated (default: derived from --seed and each expert's name)" };
        var seed = new Option<ulong?>("--seed") { Description = "Base seed for DARE masks and the randomized SVD (default 0)" };
        var outDir = new Option<string?>("--out") { Description = "Output folder (written atomically)" };
        var asAdapter = new Option<bool>("--as-adapter") { Description = "Write a merged LoRA adapter (truncated SVD) instead of a full model" };
        var rank = new Option<int?>("--rank") { Description = "Rank of the merged adapter (default 16)" };
        var dtype = new Option<string?>("--dtype") { Description = "dtype of the merged adapter: f32|bf16|f16 (default: the experts')" };
        var config = new Option<string?>("--config") { Description = "JSON merge config (same fields; command-line options win)" };
        var json = new Option<bool>("--json") { Description = "Print the merge summary as JSON" };

        var cmd = new Command("merge", "Merge LoRA experts (task_arithmetic, ties, dare, dare_ties, conflict_aware) into a model or an adapter");
        foreach (var o in new Option[] { baseDir, experts, method, density, lambda, dropRate, strength, consensus, weights, seeds, seed, outDir, asAdapter, rank, dtype, config, json })
            cmd.Options.Add(o);
        cmd.SetAction(parse =>
        {
            CommandKit.ConfigureTorch(parse);
            var fromFile = parse.GetValue(config) is { } path ? MergeSettings.Load(path) : new MergeSettings();
            var fromOptions = new MergeSettings(
                Base: parse.GetValue(baseDir),
                Experts: parse.GetValue(experts) is { Length: > 0 } e ? e.SelectMany(x => x.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)).ToArray() : null,
                Method: parse.GetValue(method),
                Density: parse.GetValue(density),
                Lambda: parse.GetValue(lambda),
                DropRate: parse.GetValue(dropRate),
                ConflictStrength: parse.GetValue(strength),
                Consensus: parse.GetValue(consensus),
                Weights: parse.GetValue(weights) is { } w ? ParseList(w, "--weights", s => double.Parse(s, CultureInfo.InvariantCulture)) : null,
                Seeds: parse.GetValue(seeds) is { } s ? ParseList(s, "--seeds", x => ulong.Parse(x, CultureInfo.InvariantCulture)) : null,
                Seed: parse.GetValue(seed),
                Out: parse.GetValue(outDir),
                AsAdapter: parse.GetValue(asAdapter) ? true : null,
                Rank: parse.GetValue(rank),
                DType: parse.GetValue(dtype));
            var request = fromFile.Overlay(fromOptions).ToRequest(parse.GetValue(config) ?? "mmx merge");
            var summary = ConsoleProgress.Run("merge", MergeDriver.CountModules(request.ExpertDirs), 0, advance => MergeDriver.Run(request, _ => advance(1)));
            if (parse.GetValue(json)) Console.WriteLine(MergeDriver.ToJson(summary with { PerModule = Array.Empty<ModuleMergeReport>() }));
            else
            {
                Console.WriteLine($"merged {summary.Modules} modules of {summary.Experts.Length} experts ({summary.Method}) into {summary.Output} {summary.OutDir} in {summary.Seconds:F1} s");
                if (summary.MeanRelativeError is { } mean)
                    Console.WriteLine($"rank {summary.Rank}: relative reconstruction error mean {mean:F4}, max {summary.MaxRelativeError:F4} (per module in {MergeDriver.ReportFileName})");
                Console.WriteLine($"conflict diagnostics: {Path.Combine(summary.OutDir, MergeDriver.ConflictsFileName)}");
            }
            return 0;
        });
        return cmd;
    }

    static T[] ParseList<T>(string text, string option, Func<string, T> parse)
    {
        try { return text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(parse).ToArray(); }
        catch (FormatException) { throw new MergeException($"{option}: '{text}' is not a comma-separated list of numbers"); }
        catch (OverflowException) { throw new MergeException($"{option}: '{text}' has a number out of range"); }
    }
}
