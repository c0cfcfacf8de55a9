using MMedExpert.Core.Model;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MMedExpert.Core.Lora;

/// <summary>
/// Named LoRA adapters on a model whose linear layers are <see cref="AdaptableLinear"/>s. Adapters attach through each
/// layer's adapter slot (modules are never replaced, so the model's state dict keeps the checkpoint's names).
/// <list type="bullet">
/// <item>Creating this object freezes the whole base: no base parameter requires grad (so none gets a gradient or
/// optimizer state); only the parameters from <see cref="TrainableParameters"/> do.</item>
/// <item>Several adapters may exist; <see cref="SetActive"/> picks one, several (their changes add up) or none (the exact
/// base model, without a second copy of the weights).</item>
/// <item><see cref="Merge"/> folds an adapter into the base weights; <see cref="Unmerge"/> restores them.</item>
/// <item><see cref="SetRowAdapters"/> routes each row of a batch to its own adapter (or none) instead of the active set:
/// requests for different adapters decode in one batch (serving).</item>
/// </list>
/// </summary>
public sealed class LoraAdapters : IDisposable
{
    readonly Dictionary<string, AdaptableLinear> linears;
    readonly Dictionary<string, LoraLayer> layers = new();
    readonly Dictionary<string, LoraConfig> configs = new();
    readonly Dictionary<string, List<LoraWeights>> byAdapter = new();
    List<string> active = new();
    LoraRowRouting? routing;

    public nn.Module Model { get; }

    public LoraAdapters(nn.Module model)
    {
        Model = model;
        linears = new Dictionary<string, AdaptableLinear>();
        foreach (var (name, module) in model.named_modules())
            if (module is AdaptableLinear l) linears[name] = l;
        foreach (var p in model.parameters()) p.requires_grad = false;
    }

    /// <summary>Paths of every adaptable linear layer of the model.</summary>
    public IReadOnlyCollection<string> LinearPaths => linears.Keys;
    public IReadOnlyList<string> Names => byAdapter.Keys.ToList();
    public IReadOnlyList<string> Active => active;
    /// <summary>The current per-row routing (see <see cref="SetRowAdapters"/>), null when the active set applies.</summary>
    public IReadOnlyList<string?>? RowAdapters => routing?.Rows;
    internal LoraRowRouting? Routing => routing;
    public bool Contains(string name) => byAdapter.ContainsKey(name);

    public LoraConfig Config(string name) => configs.TryGetValue(name, out var c) ? c : throw Unknown(name);

    /// <summary>The adapter's per-module weights, ordered by module path.</summary>
    public IReadOnlyList<LoraWeights> Modules(string name) => byAdapter.TryGetValue(name, out var l) ? l : throw Unknown(name);

    public LoraWeights Weights(string name, string modulePath) =>
        Modules(name).FirstOrDefault(w => w.ModulePath == modulePath)
        ?? throw new LoraException($"adapter '{name}' has no module '{modulePath}'");

    public AdaptableLinear Linear(string modulePath) =>
        linears.TryGetValue(modulePath, out var l) ? l : throw new LoraException($"the model has no adaptable linear layer '{modulePath}'");

    /// <summary>
    /// Adds adapter <paramref name="name"/> on every linear layer the config targets, initialized with
    /// <c>config.Init</c> from <paramref name="seed"/>. The active set is not changed.
    /// </summary>
    public void Add(string name, LoraConfig config, long seed)
    {
        config.Validate();
        var paths = linears.Keys.Where(config.Targets).OrderBy(p => p, StringComparer.Ordinal).ToList();
        if (paths.Count == 0)
            throw new LoraException($"adapter '{name}': target_modules {config.TargetModules} match no linear layer of the model" +
                                    (config.IncludeVision ? "" : " (vision modules excluded)"));
        var weights = new List<LoraWeights>();
        try
        {
            foreach (var path in paths)
            {
                var f = LoraInitializer.Create(config, linears[path].weight, path, seed);
                using (f.A) using (f.B) using (f.InitialA) using (f.InitialB)
                    weights.Add(new LoraWeights(name, path, f.A, f.B, f.InitialA, f.InitialB, config.Scale, config.Dropout));
            }
        }
        catch
        {
            foreach (var w in weights) w.Dispose();
            throw;
        }
        Attach(name, config, weights);
    }

    /// <summary>Registers ready-made weights (used by the PEFT loader). Takes ownership of <paramref name="weights"/>.</summary>
    internal void Attach(string name, LoraConfig config, List<LoraWeights> weights)
    {
        CheckNewName(name);
        foreach (var w in weights)
        {
            var linear = Linear(w.ModulePath);
            if (w.A.shape[1] != linear.InFeatures || w.B.shape[0] != linear.OutFeatures)
                throw new LoraException($"adapter '{name}' module '{w.ModulePath}': lora_A {LoraWeights.Shape(w.A)} / lora_B {LoraWeights.Shape(w.B)} " +
                                        $"do not fit the layer's [{linear.OutFeatures}, {linear.InFeatures}] weight");
        }
        foreach (var w in weights)
        {
            var linear = linears[w.ModulePath];
            if (!layers.TryGetValue(w.ModulePath, out var layer))
            {
                if (linear.Adapter != null)
                    throw new LoraException($"module '{w.ModulePath}' already has an adapter that is not managed by these LoRA adapters");
                layer = new LoraLayer(linear, w.ModulePath, this);
                layers[w.ModulePath] = layer;
                linear.Adapter = layer;
            }
            var device = linear.weight.device;
            if (w.A.device_type != device.type || w.A.device_index != device.index) throw new LoraException($"adapter '{name}' module '{w.ModulePath}': factors on {w.A.device}, weight on {device}");
            layer.Adapters[name] = w;
        }
        configs[name] = config;
        byAdapter[name] = weights.OrderBy(w => w.ModulePath, StringComparer.Ordinal).ToList();
    }

    /// <summary>
    /// Adds adapter <paramref name="name"/> as a copy of <paramref name="source"/>'s current weights (frozen, inactive):
    /// a snapshot, e.g. the policy RL starts from, kept as its KL reference at the cost of one more adapter.
    /// </summary>
    public void Copy(string source, string name)
    {
        var config = Config(source);
        if (IsMerged(source)) throw new LoraException($"adapter '{source}' is merged; unmerge it before copying it");
        var weights = Modules(source).Select(w => new LoraWeights(name, w.ModulePath, w.A, w.B, w.InitialA, w.InitialB, w.Scale, w.Dropout)).ToList();
        Attach(name, config, weights);
    }

    void CheckNewName(string name)
    {
        if (string.IsNullOrWhiteSpace(name) || name.Contains('.'))
            throw new LoraException($"adapter name '{name}' is invalid (non-empty, without '.')");
        if (byAdapter.ContainsKey(name)) throw new LoraException($"an adapter named '{name}' already exists");
    }

    /// <summary>
    /// Activates exactly these adapters (none: the base model). Merged adapters are part of the weights, so they must
    /// stay in the set until unmerged.
    /// </summary>
    public void SetActive(params string[] names)
    {
        var seen = new HashSet<string>();
        foreach (var n in names)
        {
            if (!byAdapter.ContainsKey(n)) throw Unknown(n);
            if (!seen.Add(n)) throw new LoraException($"adapter '{n}' listed twice in the active set");
        }
        foreach (var (n, ws) in byAdapter)
            if (!seen.Contains(n) && ws.Any(w => w.Merged))
                throw new LoraException($"adapter '{n}' is merged into the base weights; unmerge it before deactivating it");
        active = names.ToList();
    }

    /// <summary>
    /// Routes the rows of the next forward passes: row b of every adapted layer's input [B, ...] gets adapter
    /// <c>rowAdapters[b]</c>'s change, a null row none (the base), until <see cref="ClearRowAdapters"/>. While rows are
    /// routed the active set is not used; each layer computes each distinct adapter's output on that adapter's rows only
    /// (a gather, and a scatter-add into the base output), so a row's result is what a batch of that row alone with its
    /// adapter active gives, up to float rounding. The rows are grouped here, once, not per layer; setting the same rows
    /// again keeps that grouping. Refused: an unknown adapter, and any merged adapter (it is in the weights of every row).
    /// A forward pass whose batch differs from <c>rowAdapters.Count</c> fails.
    /// </summary>
    public void SetRowAdapters(IReadOnlyList<string?> rowAdapters)
    {
        ArgumentNullException.ThrowIfNull(rowAdapters);
        // The same rows again (a decode step like the last one): nothing to check or regroup, since Merge and Remove
        // refuse while the rows are routed.
        if (routing is not null && routing.SameRows(rowAdapters)) return;
        if (rowAdapters.Count == 0) throw new LoraException("row adapters: an empty batch cannot be routed");
        for (int b = 0; b < rowAdapters.Count; b++)
            if (rowAdapters[b] is { } n && !byAdapter.ContainsKey(n))
                throw new LoraException($"row adapters: row {b} names adapter '{n}', which does not exist");
        foreach (var (n, ws) in byAdapter)
            if (ws.Any(w => w.Merged))
                throw new LoraException($"row adapters: adapter '{n}' is merged into the base weights (every row would get it); unmerge it before routing rows");
        ClearRowAdapters();
        var first = rowAdapters.FirstOrDefault(n => n is not null);
        var device = first is null ? CPU : byAdapter[first][0].A.device;
        routing = new LoraRowRouting(rowAdapters, device);
    }

    /// <summary>Ends the per-row routing: the active set applies again.</summary>
    public void ClearRowAdapters()
    {
        routing?.Dispose();
        routing = null;
    }

    /// <summary>
    /// Makes exactly this adapter trainable (its A and B require grad; every other adapter and the base do not) and
    /// returns its parameters (A, B per module, ordered by module path): the list to give the optimizer.
    /// </summary>
    public IReadOnlyList<Parameter> TrainableParameters(string name)
    {
        var mine = Modules(name);
        if (!active.Contains(name)) throw new LoraException($"adapter '{name}' is not active; SetActive it before training it");
        if (mine.Any(w => w.Merged)) throw new LoraException($"adapter '{name}' is merged; unmerge it before training it");
        foreach (var (n, ws) in byAdapter)
            foreach (var w in ws)
            {
                w.A.requires_grad = n == name;
                w.B.requires_grad = n == name;
            }
        return mine.SelectMany(w => new[] { w.A, w.B }).ToList();
    }

    /// <summary>
    /// Every tensor of the adapter's state under a stable name (<c>path.lora_A.weight</c>, <c>path.lora_B.weight</c>,
    /// and for base-changing inits <c>path.lora_A0.weight</c>, <c>path.lora_B0.weight</c>): the live tensors, for
    /// training checkpoints that must restore the adapter bit for bit.
    /// </summary>
    public IReadOnlyList<(string Name, Tensor Tensor)> State(string name)
    {
        var list = new List<(string, Tensor)>();
        foreach (var w in Modules(name))
        {
            list.Add(($"{w.ModulePath}.lora_A.weight", w.A));
            list.Add(($"{w.ModulePath}.lora_B.weight", w.B));
            if (w.InitialA is not null)
            {
                list.Add(($"{w.ModulePath}.lora_A0.weight", w.InitialA));
                list.Add(($"{w.ModulePath}.lora_B0.weight", w.InitialB!));
            }
        }
        return list;
    }

    /// <summary>ΔW of adapter <paramref name="name"/> on one module (float32, [out, in]).</summary>
    public Tensor DeltaWeight(string name, string modulePath) => Weights(name, modulePath).Delta();

    /// <summary>
    /// Adds the adapter's ΔW into the base weights. float32/float64 weights are restored by subtracting the same ΔW;
    /// lower-precision weights keep a copy of the targeted weights so that unmerging is exact.
    /// </summary>
    public void Merge(string name)
    {
        var ws = Modules(name);
        if (ws.Any(w => w.Merged)) throw new LoraException($"adapter '{name}' is already merged");
        if (!active.Contains(name)) throw new LoraException($"adapter '{name}' is not active; merging it would change the model's function");
        if (routing is not null) throw new LoraException($"adapter '{name}': rows are routed to adapters; clear the row routing before merging");
        using var noGrad = no_grad();
        foreach (var w in ws)
        {
            var weight = linears[w.ModulePath].weight;
            using var delta = w.Delta();
            if (weight.dtype is ScalarType.Float32 or ScalarType.Float64)
                weight.add_(delta.to_type(weight.dtype));
            else
            {
                w.PreMergeWeight = weight.detach().clone().DetachFromDisposeScope();
                using var sum = weight.to_type(ScalarType.Float32).add_(delta);
                weight.copy_(sum);
            }
            w.Merged = true;
        }
    }

    public void Unmerge(string name)
    {
        var ws = Modules(name);
        if (!ws.All(w => w.Merged)) throw new LoraException($"adapter '{name}' is not merged");
        using var noGrad = no_grad();
        foreach (var w in ws)
        {
            var weight = linears[w.ModulePath].weight;
            if (w.PreMergeWeight is { } saved)
            {
                weight.copy_(saved);
                saved.Dispose();
                w.PreMergeWeight = null;
            }
            else
            {
                using var delta = w.Delta();
                weight.sub_(delta.to_type(weight.dtype));
            }
            w.Merged = false;
        }
    }

    public bool IsMerged(string name) => Modules(name).Any(w => w.Merged);

    /// <summary>Removes the adapter (unmerging it first if merged), restoring the layers it was on.</summary>
    public void Remove(string name)
    {
        var ws = Modules(name);
        if (routing is not null && routing.Names(name))
            throw new LoraException($"adapter '{name}' is routed to rows of the batch; clear the row routing before removing it");
        if (ws.Any(w => w.Merged)) Unmerge(name);
        foreach (var w in ws)
        {
            var layer = layers[w.ModulePath];
            layer.Adapters.Remove(name);
            if (layer.Adapters.Count == 0)
            {
                linears[w.ModulePath].Adapter = null;
                layers.Remove(w.ModulePath);
            }
            w.Dispose();
        }
        byAdapter.Remove(name);
        configs.Remove(name);
        active.Remove(name);
    }

    /// <summary>Saves the adapter in PEFT's layout (see <see cref="PeftAdapter.Save"/>).</summary>
    public void Save(string name, string dir) => PeftAdapter.Save(this, name, dir);

    /// <summary>Loads a PEFT adapter folder as adapter <paramref name="name"/> (see <see cref="PeftAdapter.Load"/>).</summary>
    public LoraConfig Load(string dir, string name, Func<string, string>? modulePathMap = null) => PeftAdapter.Load(this, dir, name, modulePathMap);

    static LoraException Unknown(string name) => new($"no adapter named '{name}'");

    public void Dispose()
    {
        ClearRowAdapters();
        foreach (var name in byAdapter.Keys.ToList()) Remove(name);
    }
}
