using System.CommandLine;
using System.Diagnostics;
using System.Text.Json.Nodes;
using MMedExpert.Algebra.Merge;
using MMedExpert.Core.IO;
using MMedExpert.Core.Lora;
using MMedExpert.Core.Merging;
using MMedExpert.Data.Eval;
using TorchSharp;

namespace MMedExpert.Cli.Commands.Bench;

/// <summary>
/// `mmx bench merge`: merges four rank-16 LoRA experts shaped like Qwen2.5-7B's language model (q/o 3584×3584, k/v
/// 512×3584, gate/up 18944×3584, down 3584×18944, 28 layers), generated on the fly, into a rank-16 adapter, and
/// compares the merge time with the time to read the same adapter files in the same run.
/// </summary>
public static class MergeBench
{
    const int Hidden = 3584, Intermediate = 18944, KvOut = 4 * 128, FullLayers = 28;

    static readonly (string Name, int Out, int In)[] Modules =
    {
        ("self_attn.q_proj", Hidden, Hidden), ("self_attn.k_proj", KvOut, Hidden), ("self_attn.v_proj", KvOut, Hidden),
        ("self_attn.o_proj", Hidden, Hidden), ("mlp.gate_proj", Intermediate, Hidden), ("mlp.up_proj", Intermediate, Hidden),
        ("mlp.down_proj", Hidden, Intermediate),
    };

    public static Command Create()
    {
        var layers = new Option<int>("--layers") { Description = $"Layers to generate (default all {FullLayers}; fewer keeps it short on small machines)", DefaultValueFactory = _ => FullLayers };
        var experts = new Option<int>("--experts") { Description = "Number of experts", DefaultValueFactory = _ => 4 };
        var rank = new Option<int>("--rank") { Description = "Rank of the experts and of the merged adapter", DefaultValueFactory = _ => 16 };
        var method = new Option<string>("--method") { Description = string.Join("|", MergeMethodModule.names), DefaultValueFactory = _ => "conflict_aware" };
        var density = new Option<double>("--density") { Description = "Trim density", DefaultValueFactory = _ => 0.2 };
        var dtype = new Option<string>("--dtype") { Description = "dtype of the generated adapters: bf16|f32", DefaultValueFactory = _ => "bf16" };
        var dir = new Option<string?>("--dir") { Description = "Folder for the generated files (default: the system temp folder)" };
        var json = new Option<bool>("--json") { Description = "Print one JSON object" };
        var cmd = new Command("merge", "Merge time of four rank-16 experts on a 7B-shaped LoRA set vs the time to read the same files");
        foreach (var o in new Option[] { layers, experts, rank, method, density, dtype, dir, json }) cmd.Options.Add(o);
        cmd.SetAction(parse =>
        {
            CommandKit.ConfigureTorch(parse);
            int nLayers = parse.GetValue(layers), nExperts = parse.GetValue(experts), r = parse.GetValue(rank);
            if (nLayers < 1 || nExperts < 1 || r < 1) throw new MergeException("bench merge: --layers, --experts and --rank must be positive");
            var storedType = parse.GetValue(dtype) switch
            {
                "bf16" => torch.ScalarType.BFloat16,
                "f32" => torch.ScalarType.Float32,
                var other => throw new MergeException($"bench merge: --dtype '{other}' is not bf16 or f32"),
            };
            string parent = parse.GetValue(dir) is { } d ? Path.GetFullPath(d) : Path.GetTempPath();
            string folder = Directory.CreateDirectory(Path.Combine(parent, $"mmx-bench-merge-{Guid.NewGuid():N}")).FullName;
            try
            {
                var genClock = Stopwatch.StartNew();
                var expertDirs = Enumerable.Range(0, nExperts).Select(i => Generate(Path.Combine(folder, $"expert{i}"), i, nLayers, r, storedType)).ToList();
                double generateSeconds = genClock.Elapsed.TotalSeconds;
                long bytes = expertDirs.Sum(e => new FileInfo(Path.Combine(e, PeftAdapter.WeightsFileName)).Length);

                var cpu = System.Diagnostics.Process.GetCurrentProcess();
                var cpuBefore = cpu.TotalProcessorTime;
                double readSeconds = ReadAll(expertDirs);
                cpu.Refresh();
                double readCpu = (cpu.TotalProcessorTime - cpuBefore).TotalSeconds;
                var request = new MergeSettings(Experts: expertDirs.ToArray(), Method: parse.GetValue(method), Density: parse.GetValue(density),
                    Out: Path.Combine(folder, "merged"), AsAdapter: true, Rank: r).ToRequest("bench merge");
                var config = request.Config;
                double deltaSeconds = FormDeltas(expertDirs);
                cpu.Refresh();
                var mergeCpuBefore = cpu.TotalProcessorTime;
                var summary = ConsoleProgress.Run("bench merge", MergeDriver.CountModules(request.ExpertDirs), 0, advance => MergeDriver.Run(request, _ => advance(1)));
                cpu.Refresh();
                double mergeCpu = (cpu.TotalProcessorTime - mergeCpuBefore).TotalSeconds;

                var result = new
                {
                    layers = nLayers,
                    experts = nExperts,
                    rank = r,
                    method = summary.Method,
                    density = config.Density,
                    modules = summary.Modules,
                    adapter_dtype = parse.GetValue(dtype),
                    adapter_bytes_total = bytes,
                    generate_seconds = Math.Round(generateSeconds, 2),
                    read_seconds = Math.Round(readSeconds, 3),
                    merge_seconds = Math.Round(summary.Seconds, 2),
                    merge_over_read = Math.Round(summary.Seconds / readSeconds, 1),
                    delta_seconds = Math.Round(deltaSeconds, 2),
                    merge_over_delta = Math.Round(summary.Seconds / deltaSeconds, 1),
                    merge_seconds_per_layer = Math.Round(summary.Seconds / nLayers, 2),
                    read_cpu_seconds = Math.Round(readCpu, 3),
                    merge_cpu_seconds = Math.Round(mergeCpu, 2),
                    load_average_1min = File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Split(' ')[0] : "?",
                    projected_merge_seconds_28_layers = Math.Round(summary.Seconds / nLayers * FullLayers, 1),
                    svd_relative_error_mean = summary.MeanRelativeError is { } m ? Math.Round(m, 4) : (double?)null,
                    svd_relative_error_max = summary.MaxRelativeError is { } x ? Math.Round(x, 4) : (double?)null,
                    threads = torch.get_num_threads(),
                    note = "read = open + every tensor of the same adapter files read into memory (warm page cache); " +
                           "delta = read + ΔW = scale·B·A of every expert and module (the floor of any merge in ΔW space); " +
                           "merge = mmx merge end to end: read, ΔW = scale·B·A per expert, conflict diagnostics, merge, " +
                           "rank-r truncated SVD (randomized for large modules), writing the adapter, conflicts.json and merge.json; " +
                           "cpu seconds = process CPU time (less sensitive than wall time to other work on the machine)",
                };
                if (parse.GetValue(json)) CommandKit.WriteJson(result);
                else Console.WriteLine($"{result.modules} modules, {nExperts} experts: read {result.read_seconds} s, merge {result.merge_seconds} s " +
                                       $"(×{result.merge_over_read} the read), {result.merge_seconds_per_layer} s per layer, SVD error mean {result.svd_relative_error_mean}");
                return 0;
            }
            finally { Directory.Delete(folder, recursive: true); }
        });
        return cmd;
    }

    /// <summary>One expert: A = A₀ + noise and B = B₀ + noise around a shared pair, so experts partly agree (as experts
    /// fine-tuned from one base on related data do) and partly conflict.</summary>
    static string Generate(string dir, int expert, int layers, int rank, torch.ScalarType dtype)
    {
        Directory.CreateDirectory(dir);
        var tensors = new List<KeyValuePair<string, torch.Tensor>>();
        try
        {
            for (int layer = 0; layer < layers; layer++)
                foreach (var (name, outF, inF) in Modules)
                {
                    using var scope = torch.NewDisposeScope();
                    string module = $"model.layers.{layer}.{name}";
                    using var shared = new torch.Generator((ulong)(layer * 97 + name.Length), torch.CPU);
                    using var own = new torch.Generator((ulong)(1_000_003 * (expert + 1) + layer * 97 + name.Length), torch.CPU);
                    var a = torch.randn(new long[] { rank, inF }, generator: shared).add_(torch.randn(new long[] { rank, inF }, generator: own)).div_(Math.Sqrt(inF));
                    var b = torch.randn(new long[] { outF, rank }, generator: shared).add_(torch.randn(new long[] { outF, rank }, generator: own)).mul_(0.01);
                    tensors.Add(new(PeftAdapter.KeyA(module), a.to_type(dtype).MoveToOuterDisposeScope()));
                    tensors.Add(new(PeftAdapter.KeyB(module), b.to_type(dtype).MoveToOuterDisposeScope()));
                }
            Safetensors.Save(Path.Combine(dir, PeftAdapter.WeightsFileName), tensors, new Dictionary<string, string> { ["format"] = "pt" });
        }
        finally
        {
            foreach (var kv in tensors) kv.Value.Dispose();
        }
        var config = new JsonObject
        {
            ["peft_type"] = "LORA",
            ["r"] = rank,
            ["lora_alpha"] = 2 * rank,
            ["use_rslora"] = false,
            ["target_modules"] = new JsonArray("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
            ["base_model_name_or_path"] = "Qwen/Qwen2.5-7B (shapes only)",
        };
        AtomicFile.WriteAllText(Path.Combine(dir, PeftAdapter.ConfigFileName), config.ToJsonString());
        return dir;
    }

    /// <summary>Forms every expert's dense ΔW for every module and drops it: what any merge in ΔW space must compute.</summary>
    static double FormDeltas(List<string> dirs)
    {
        var clock = Stopwatch.StartNew();
        foreach (var dir in dirs)
        {
            using var adapter = PeftAdapter.Open(dir);
            foreach (var module in adapter.Modules)
            {
                using var delta = adapter.LoadDelta(module);
            }
        }
        return clock.Elapsed.TotalSeconds;
    }

    /// <summary>Reads every tensor of every adapter into its own memory (the I/O a merge cannot avoid).</summary>
    static double ReadAll(List<string> dirs)
    {
        var clock = Stopwatch.StartNew();
        foreach (var dir in dirs)
        {
            using var file = SafetensorsFile.Open(Path.Combine(dir, PeftAdapter.WeightsFileName));
            foreach (var name in file.Names)
            {
                using var t = file.Load(name, copy: true);
            }
        }
        return clock.Elapsed.TotalSeconds;
    }
}
