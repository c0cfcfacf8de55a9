using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using MMedExpert.Algebra.Merge;
using MMedExpert.Core.IO;
using MMedExpert.Core.Lora;
using Microsoft.FSharp.Collections;
using TorchSharp;

namespace MMedExpert.Core.Merging;

/// <summary>
/// Merges PEFT LoRA experts module by module: for each module it loads every expert's ΔW = scale·B·A, measures their
/// conflicts, merges them with the algebra (MergeConfig) and either re-factorises the result by truncated SVD into a
/// merged adapter or adds it to the base weight. Only the current module's deltas (and, for a full model, the current
/// shard) are in memory at once. Writes conflicts.json and merge.json beside the weights, the whole folder atomically.
/// </summary>
public static class MergeDriver
{
    public const string ConflictsFileName = "conflicts.json";
    public const string ReportFileName = "merge.json";

    static readonly JsonSerializerOptions ReportJson = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase };

    /// <summary>A summary as merge.json writes it (camelCase).</summary>
    public static string ToJson(MergeSummary summary) => JsonSerializer.Serialize(summary, ReportJson);

    /// <summary>How many modules a merge of these experts will process (reads only the adapters' headers), for a progress total.</summary>
    public static int CountModules(IReadOnlyList<string> expertDirs)
    {
        var experts = new List<PeftAdapter>();
        try
        {
            foreach (var dir in expertDirs) experts.Add(PeftAdapter.Open(dir));
            return ModuleShapes(experts).Count;
        }
        finally
        {
            foreach (var e in experts) e.Dispose();
        }
    }

    public static MergeSummary Run(MergeRequest request, Action<MergeProgress>? progress = null)
    {
        var clock = Stopwatch.StartNew();
        if (request.ExpertDirs.Count == 0) throw new MergeException("merge: no experts given");
        if (request.AsAdapter && request.Rank < 1) throw new MergeException($"merge: rank must be positive, got {request.Rank}");
        if (!request.AsAdapter && request.BaseDir == null) throw new MergeException("merge: a merged model needs --base (or ask for --as-adapter)");

        var names = ExpertNames.Unique(request.ExpertDirs);
        var config = request.Config.Seeds.Length == 0
            ? WithSeeds(request.Config, names.Select(n => Dare.moduleSeed(request.Seed, n)).ToArray())
            : request.Config;
        var problems = MergeConfigModule.problems(names.Length, config);
        if (!problems.IsEmpty) throw new MergeException($"merge config: {string.Join("; ", problems)}");

        var experts = new List<PeftAdapter>();
        Checkpoint? baseCheckpoint = null;
        try
        {
            foreach (var dir in request.ExpertDirs) experts.Add(PeftAdapter.Open(dir));
            var shapes = ModuleShapes(experts);
            if (request.BaseDir != null)
            {
                baseCheckpoint = Checkpoint.Open(request.BaseDir);
                CheckAgainstBase(baseCheckpoint, shapes, experts);
            }
            var session = new Session(request, config, names, experts, shapes, progress);
            var summary = request.AsAdapter ? session.WriteAdapter(clock) : session.WriteModel(baseCheckpoint!, clock);
            return summary;
        }
        finally
        {
            foreach (var e in experts) e.Dispose();
            baseCheckpoint?.Dispose();
        }
    }

    static MergeConfig WithSeeds(MergeConfig c, ulong[] seeds) =>
        new(c.Method, c.Density, c.Lambda, c.DropRate, c.ConflictStrength, c.ConsensusMinExperts, c.Weights, seeds);

    /// <summary>Every module any expert adapts, with its [out, in]; experts must agree on the shape.</summary>
    static SortedDictionary<string, long[]> ModuleShapes(List<PeftAdapter> experts)
    {
        var shapes = new SortedDictionary<string, long[]>(ModuleOrder.Comparer);
        var owner = new Dictionary<string, PeftAdapter>();
        foreach (var e in experts)
            foreach (var m in e.Modules)
            {
                var shape = e.ShapeOf(m);
                if (shapes.TryGetValue(m, out var seen))
                {
                    if (!seen.SequenceEqual(shape))
                        throw new MergeException(
                            $"{e.WeightsPath}: tensor '{PeftAdapter.KeyA(m)}' gives module '{m}' the shape [{string.Join(", ", shape)}] " +
                            $"but {owner[m].WeightsPath} gives it [{string.Join(", ", seen)}]");
                }
                else { shapes[m] = shape; owner[m] = e; }
            }
        return shapes;
    }

    static void CheckAgainstBase(Checkpoint ckpt, SortedDictionary<string, long[]> shapes, List<PeftAdapter> experts)
    {
        foreach (var (module, shape) in shapes)
        {
            string key = module + ".weight";
            var expert = experts.First(e => e.Contains(module));
            if (!ckpt.Contains(key))
                throw new MergeException($"{ckpt.Source}: tensor '{key}' not found, but {expert.WeightsPath} adapts module '{module}'");
            var info = ckpt.Info(key);
            if (!info.Shape.SequenceEqual(shape))
                throw new MergeException(
                    $"{ckpt.Source}: tensor '{key}' has shape [{string.Join(", ", info.Shape)}] but {expert.WeightsPath} " +
                    $"tensor '{PeftAdapter.KeyB(module)}'·'{PeftAdapter.KeyA(module)}' gives [{string.Join(", ", shape)}]");
        }
    }

    /// <summary>The state of one merge run: inputs, and the per-module results collected for the reports.</summary>
    sealed class Session
    {
        readonly MergeRequest request;
        readonly MergeConfig config;
        readonly string[] names;
        readonly List<PeftAdapter> experts;
        readonly SortedDictionary<string, long[]> shapes;
        readonly Action<MergeProgress>? progress;
        readonly List<Conflicts.ModuleConflicts> conflicts = new();
        readonly List<ModuleMergeReport> reports = new();
        int done;

        public Session(MergeRequest request, MergeConfig config, string[] names, List<PeftAdapter> experts,
            SortedDictionary<string, long[]> shapes, Action<MergeProgress>? progress)
        {
            this.request = request;
            this.config = config;
            this.names = names;
            this.experts = experts;
            this.shapes = shapes;
            this.progress = progress;
        }

        /// <summary>Merges one module; the caller owns the returned delta (float32, out×in).</summary>
        torch.Tensor MergeModule(string module)
        {
            using var scope = torch.NewDisposeScope();
            var shape = shapes[module];
            var deltas = experts.Select(e => e.Contains(module) ? e.LoadDelta(module) : torch.zeros(shape, torch.ScalarType.Float32)).ToList();
            var list = ListModule.OfSeq(deltas);
            conflicts.Add(Conflicts.measure(module, list));
            var merged = Merge.mergeModule(config, module, list);
            reports.Add(new ModuleMergeReport(module, shape, experts.Count(e => e.Contains(module)), merged.ConflictScale,
                Tensors.norm64(merged.Delta), null, null));
            return merged.Delta.MoveToOuterDisposeScope();
        }

        void Advance(string module)
        {
            done++;
            progress?.Invoke(new MergeProgress(done, shapes.Count, module));
        }

        public MergeSummary WriteAdapter(Stopwatch clock)
        {
            var dtype = request.OutputDType ?? experts[0].StoredDType;
            var factors = new List<KeyValuePair<string, torch.Tensor>>();
            var clampedRanks = new SortedDictionary<string, int>(ModuleOrder.Comparer);
            try
            {
                foreach (var module in shapes.Keys)
                {
                    using var scope = torch.NewDisposeScope();
                    var delta = MergeModule(module);
                    var shape = shapes[module];
                    var method = Refactor.chooseMethod(request.Rank, shape[0], shape[1], Dare.moduleSeed(request.Seed, module));
                    var f = Refactor.refactor(method, request.Rank, delta);
                    var b = f.B.to_type(dtype).contiguous();
                    var a = f.A.to_type(dtype).contiguous();
                    double error = Refactor.relativeError(delta, b, a);
                    if (f.Rank != request.Rank) clampedRanks[module] = f.Rank;
                    factors.Add(new(PeftAdapter.KeyA(module), a.MoveToOuterDisposeScope()));
                    factors.Add(new(PeftAdapter.KeyB(module), b.MoveToOuterDisposeScope()));
                    reports[^1] = reports[^1] with { Rank = f.Rank, RelativeError = error };
                    Advance(module);
                }
                var summary = Summary("adapter", clock);
                AtomicFile.WriteDirectory(request.OutDir, tmp =>
                {
                    Safetensors.Save(Path.Combine(tmp, PeftAdapter.WeightsFileName), factors,
                        new Dictionary<string, string> { ["format"] = "pt" });
                    File.WriteAllText(Path.Combine(tmp, PeftAdapter.ConfigFileName), AdapterConfig(clampedRanks).ToJsonString(ReportJson));
                    WriteReports(tmp, summary with { Seconds = clock.Elapsed.TotalSeconds });
                });
                return summary with { Seconds = clock.Elapsed.TotalSeconds };
            }
            finally
            {
                foreach (var kv in factors) kv.Value.Dispose();
            }
        }

        /// <summary>The first expert's config with the merged rank: r = lora_alpha = R (scale 1, so B·A is the merged ΔW),
        /// no rsLoRA, the union of target modules; modules whose rank had to be capped at min(out, in) go to rank_pattern
        /// and alpha_pattern with the same value.</summary>
        JsonObject AdapterConfig(SortedDictionary<string, int> clampedRanks)
        {
            var config = (JsonObject)experts[0].Config.DeepClone();
            config["r"] = request.Rank;
            config["lora_alpha"] = request.Rank;
            config["use_rslora"] = false;
            config["use_dora"] = false;
            var rankPattern = new JsonObject();
            var alphaPattern = new JsonObject();
            foreach (var (module, rank) in clampedRanks)
            {
                rankPattern[module] = rank;
                alphaPattern[module] = rank;
            }
            config["rank_pattern"] = rankPattern;
            config["alpha_pattern"] = alphaPattern;
            if (experts.All(e => e.Config["target_modules"] is JsonArray))
            {
                var union = experts.SelectMany(e => ((JsonArray)e.Config["target_modules"]!).Select(n => n?.ToString() ?? ""))
                    .Distinct().OrderBy(s => s, StringComparer.Ordinal);
                config["target_modules"] = new JsonArray(union.Select(s => (JsonNode?)JsonValue.Create(s)).ToArray());
            }
            return config;
        }

        public MergeSummary WriteModel(Checkpoint baseCheckpoint, Stopwatch clock)
        {
            // Shards planned up front from the base's sizes (a merged tensor keeps its base dtype and shape), then
            // produced one at a time: only one shard of merged weights is ever in memory.
            var entries = baseCheckpoint.Names.Select(n => (Name: n, Info: baseCheckpoint.Info(n))).ToList();
            var shards = new List<List<string>> { new() };
            long current = 0, total = 0;
            foreach (var (name, info) in entries)
            {
                if (current > 0 && current + info.ByteCount > request.MaxShardBytes) { shards.Add(new()); current = 0; }
                shards[^1].Add(name);
                current += info.ByteCount;
                total += info.ByteCount;
            }
            var targets = shapes.Keys.ToDictionary(m => m + ".weight", m => m);
            MergeSummary? summary = null;
            AtomicFile.WriteDirectory(request.OutDir, tmp =>
            {
                var weightMap = new SortedDictionary<string, string>(StringComparer.Ordinal);
                for (int s = 0; s < shards.Count; s++)
                {
                    string fileName = shards.Count == 1 ? Checkpoint.SingleFileName : $"model-{s + 1:D5}-of-{shards.Count:D5}.safetensors";
                    var tensors = new List<KeyValuePair<string, torch.Tensor>>();
                    try
                    {
                        foreach (var name in shards[s])
                        {
                            var weight = baseCheckpoint.Load(name);
                            if (targets.TryGetValue(name, out var module))
                            {
                                using var scope = torch.NewDisposeScope();
                                var delta = MergeModule(module);
                                // Out of place: the base tensor is a (copy-on-write) view of the base file's memory map.
                                var merged = weight.to_type(torch.ScalarType.Float32).add(delta).to_type(weight.dtype);
                                weight.Dispose();
                                weight = merged.MoveToOuterDisposeScope();
                                Advance(module);
                            }
                            tensors.Add(new(name, weight));
                            weightMap[name] = fileName;
                        }
                        Safetensors.Save(Path.Combine(tmp, fileName), tensors, new Dictionary<string, string> { ["format"] = "pt" });
                    }
                    finally
                    {
                        foreach (var kv in tensors) kv.Value.Dispose();
                    }
                }
                if (shards.Count > 1)
                {
                    var index = new JsonObject
                    {
                        ["metadata"] = new JsonObject { ["total_size"] = total },
                        ["weight_map"] = new JsonObject(weightMap.Select(kv => new KeyValuePair<string, JsonNode?>(kv.Key, kv.Value))),
                    };
                    File.WriteAllText(Path.Combine(tmp, Checkpoint.IndexFileName), index.ToJsonString(ReportJson));
                }
                CopyBaseSideFiles(tmp);
                summary = Summary("model", clock);
                WriteReports(tmp, summary);
            });
            return summary! with { Seconds = clock.Elapsed.TotalSeconds };
        }

        /// <summary>config.json, tokenizer and processor files: everything in the base folder except its weights.</summary>
        void CopyBaseSideFiles(string tmp)
        {
            string dir = Directory.Exists(request.BaseDir) ? request.BaseDir! : Path.GetDirectoryName(Path.GetFullPath(request.BaseDir!))!;
            foreach (var file in Directory.GetFiles(dir))
            {
                string name = Path.GetFileName(file);
                if (name.EndsWith(".safetensors", StringComparison.Ordinal) || name == Checkpoint.IndexFileName) continue;
                File.Copy(file, Path.Combine(tmp, name));
            }
        }

        MergeSummary Summary(string output, Stopwatch clock)
        {
            var errors = reports.Where(r => r.RelativeError.HasValue).Select(r => r.RelativeError!.Value).ToList();
            var ordered = reports.OrderBy(r => r.Module, ModuleOrder.Comparer).ToArray();
            return new MergeSummary(Path.GetFullPath(request.OutDir), output, MergeMethodModule.name(config.Method), names, config.Seeds,
                config.Density, config.Lambda, config.DropRate, config.ConflictStrength, reports.Count,
                request.AsAdapter ? request.Rank : null,
                errors.Count > 0 ? errors.Average() : null, errors.Count > 0 ? errors.Max() : null,
                clock.Elapsed.TotalSeconds, ordered);
        }

        void WriteReports(string dir, MergeSummary summary)
        {
            var ordered = conflicts.OrderBy(c => c.Module, ModuleOrder.Comparer);
            File.WriteAllText(Path.Combine(dir, ConflictsFileName), Conflicts.toJson(Conflicts.report(names, ordered)));
            File.WriteAllText(Path.Combine(dir, ReportFileName), ToJson(summary));
        }
    }
}
