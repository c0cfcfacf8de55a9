using System.Text.Json;
using System.Text.Json.Nodes;
using MMedExpert.Core.IO;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MMedExpert.Core.Training;

/// <summary>Where a training run stands: everything besides tensors that a resumed run needs.</summary>
/// <param name="Step">Optimizer steps done.</param>
/// <param name="DataPosition">Micro-batches consumed (the index of the next one).</param>
/// <param name="SchedulerStep">The schedule's position (= Step for the trainer here; kept separately for other loops).</param>
/// <param name="Seed">The run seed every per-step seed derives from.</param>
/// <param name="Options">The options that must match on resume (schedule, accumulation, ...), as JSON.</param>
public sealed record TrainingState(long Step, long DataPosition, long SchedulerStep, long Seed, JsonObject Options);

/// <summary>
/// A resumable training checkpoint, one folder written atomically (complete or absent):
/// <c>state.json</c> (<see cref="TrainingState"/>), <c>tensors.safetensors</c> (the trainable state by name, plus the
/// torch CPU generator state) and <c>optimizer.bin</c> (TorchSharp's optimizer state: AdamW moments and step counts).
/// </summary>
public static class TrainingCheckpoint
{
    public const string StateFile = "state.json", TensorsFile = "tensors.safetensors", OptimizerFile = "optimizer.bin";
    public const string Format = "mmx-training-checkpoint";
    const string RngKey = "__rng__.torch_cpu";

    public static bool Exists(string dir) => File.Exists(Path.Combine(dir, StateFile));

    public static void Save(string dir, TrainingState state, IReadOnlyList<(string Name, Tensor Tensor)> tensors, OptimizerHelper optimizer)
    {
        var names = new HashSet<string>();
        foreach (var (n, _) in tensors)
            if (n == RngKey || !names.Add(n)) throw new TrainingException($"checkpoint {dir}: duplicate or reserved tensor name '{n}'");
        var json = new JsonObject
        {
            ["format"] = Format,
            ["version"] = 1,
            ["step"] = state.Step,
            ["data_position"] = state.DataPosition,
            ["scheduler_step"] = state.SchedulerStep,
            ["seed"] = state.Seed,
            ["options"] = state.Options.DeepClone(),
            ["tensors"] = new JsonArray(tensors.Select(t => (JsonNode?)JsonValue.Create(t.Name)).ToArray()),
        };
        using var scope = NewDisposeScope();
        var list = new List<KeyValuePair<string, Tensor>>();
        using (no_grad())
            foreach (var (n, t) in tensors) list.Add(new(n, t.detach().cpu()));
        list.Add(new(RngKey, random.get_rng_state()));
        AtomicFile.WriteDirectory(dir, tmp =>
        {
            Safetensors.Save(Path.Combine(tmp, TensorsFile), list);
            using (var fs = new FileStream(Path.Combine(tmp, OptimizerFile), FileMode.CreateNew))
            using (var w = new BinaryWriter(fs))
                optimizer.save_state_dict(w);
            File.WriteAllText(Path.Combine(tmp, StateFile), json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        });
    }

    /// <summary>Refuses to resume with settings that change the run: names the first option that differs.</summary>
    public static void RequireSameOptions(JsonObject saved, JsonObject now, string path)
    {
        foreach (var (k, v) in now)
        {
            var old = saved[k];
            if (old is null || old.ToJsonString() != v!.ToJsonString())
                throw new TrainingException($"{path}: options.{k} is {old?.ToJsonString() ?? "missing"} in the checkpoint but {v!.ToJsonString()} now; resume with the same settings");
        }
    }

    public static TrainingState ReadState(string dir)
    {
        string path = Path.Combine(dir, StateFile);
        if (!File.Exists(path)) throw new TrainingException($"{path}: file not found");
        try
        {
            var o = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new TrainingException($"{path}: expected a JSON object");
            if (o["format"]?.GetValue<string>() != Format) throw new TrainingException($"{path}: key 'format': expected \"{Format}\"");
            if (o["version"]?.GetValue<int>() != 1) throw new TrainingException($"{path}: key 'version': unsupported version {o["version"]}");
            long Req(string key) => o[key]?.GetValue<long>() ?? throw new TrainingException($"{path}: key '{key}' is missing");
            return new TrainingState(Req("step"), Req("data_position"), Req("scheduler_step"), Req("seed"),
                o["options"] as JsonObject ?? throw new TrainingException($"{path}: key 'options' is missing"));
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException)
        {
            throw new TrainingException($"{path}: {e.Message}");
        }
    }

    /// <summary>
    /// Reads the state and restores, in place, every tensor of <paramref name="tensors"/> (names and shapes must match
    /// the checkpoint exactly), the optimizer's state and the torch CPU generator.
    /// </summary>
    public static TrainingState Load(string dir, IReadOnlyList<(string Name, Tensor Tensor)> tensors, OptimizerHelper optimizer)
    {
        var state = ReadState(dir);
        string tensorsPath = Path.Combine(dir, TensorsFile);
        using (var file = SafetensorsFile.Open(tensorsPath))
        {
            var expected = tensors.Select(t => t.Name).ToHashSet();
            foreach (var n in file.Names)
                if (n != RngKey && !expected.Contains(n)) throw new TrainingException($"{tensorsPath}: tensor '{n}' is not part of this run's state");
            using var noGrad = no_grad();
            foreach (var (n, t) in tensors)
            {
                if (!file.Contains(n)) throw new TrainingException($"{tensorsPath}: tensor '{n}' is missing");
                var info = file.Info(n);
                if (!info.Shape.SequenceEqual(t.shape))
                    throw new TrainingException($"{tensorsPath}: tensor '{n}' has shape [{string.Join(", ", info.Shape)}], expected [{string.Join(", ", t.shape)}]");
                using var loaded = file.Load(n, t.dtype, copy: true);
                t.copy_(loaded);
            }
            if (file.Contains(RngKey))
            {
                using var rng = file.Load(RngKey, copy: true);
                random.set_rng_state(rng);
            }
        }
        string optimizerPath = Path.Combine(dir, OptimizerFile);
        if (!File.Exists(optimizerPath)) throw new TrainingException($"{optimizerPath}: file not found");
        try
        {
            using var fs = File.OpenRead(optimizerPath);
            using var r = new BinaryReader(fs);
            optimizer.load_state_dict(r);
        }
        catch (Exception e) when (e is not MmxException)
        {
            throw new TrainingException($"{optimizerPath}: cannot restore the optimizer state ({e.GetType().Name}: {e.Message})");
        }
        return state;
    }
}
