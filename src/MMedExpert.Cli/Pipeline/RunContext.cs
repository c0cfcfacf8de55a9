using MMedExpert.Core.Lora;
using MMedExpert.Core.Model;
using MMedExpert.Core.Model.Generation;
using MMedExpert.Core.Model.Loading;
using MMedExpert.Core.Tokenization;
using MMedExpert.Core.Training;
using MMedExpert.Core.Vision;
using MMedExpert.Data.Schema;

namespace MMedExpert.Cli.Pipeline;

/// <summary>Paths of a run folder (docs/run-layout.md) and the loaders every stage shares.</summary>
public sealed class RunContext(string runDir, PipelineConfig config)
{
    public string RunDir { get; } = Path.GetFullPath(runDir);
    public PipelineConfig Config { get; } = config;

    public string DataDir => Config.Data.Path is { } p ? Path.GetFullPath(p) : Path.Combine(RunDir, "data");
    public string Split(string name) => Path.Combine(DataDir, name + ".jsonl");
    public string BaseDir => Config.Base.Checkpoint is { } c ? Path.GetFullPath(c)
        : Config.Base.Source switch
        {
            BaseConfig.Shipped => Pretraining.ShippedBase.DefaultDir,
            BaseConfig.Scratch => Path.Combine(RunDir, "base"),
            var other => throw new PipelineException($"base.source '{other}': expected {BaseConfig.Shipped} or {BaseConfig.Scratch} (or set base.checkpoint)"),
        };
    /// <summary>The base is built by this run (the from-scratch path), not brought from a folder.</summary>
    public bool BuildsBase => Config.Base.Checkpoint is null && Config.Base.Source == BaseConfig.Scratch;
    public string ExpertDir(string specialty, string kind) => Path.Combine(RunDir, "experts", specialty, kind);
    public string WorkDir(string what) => Path.Combine(RunDir, "work", what);
    public string MergedDir(string method, string from) => Path.Combine(RunDir, "merged", $"{method}-{from}");
    public string EvalDir(string model) => Path.Combine(RunDir, "eval", model);
    public string MetricsPath(string name) => Path.Combine(RunDir, "metrics", name + ".jsonl");
    public string FiguresDir => Path.Combine(RunDir, "figures");

    public TraceStyle Trace => Config.Data.Trace;

    /// <summary>The dtype models are loaded in (base.dtype: fp32 or bf16).</summary>
    public TorchSharp.torch.ScalarType ModelDType => Config.Base.Dtype.ToLowerInvariant() switch
    {
        "fp32" or "float32" => TorchSharp.torch.ScalarType.Float32,
        "bf16" or "bfloat16" => TorchSharp.torch.ScalarType.BFloat16,
        var other => throw new PipelineException($"base.dtype '{other}': expected fp32 or bf16"),
    };

    /// <summary>The matmul dtype of training and decoding (base.compute_dtype; null = the weights' own).</summary>
    public TorchSharp.torch.ScalarType? ComputeDType
    {
        get
        {
            try { return MixedPrecision.Parse(Config.Base.ComputeDtype, "base.compute_dtype"); }
            catch (ArgumentException e) { throw new PipelineException(e.Message); }
        }
    }

    public IReadOnlyList<MedItem> Items(string split) => MedItemLoader.Load(Split(split)).Items;

    public Qwen2Tokenizer Tokenizer() => Qwen2Tokenizer.FromFile(Path.Combine(BaseDir, "tokenizer.json"));

    public VisionChatEncoder Encoder() =>
        new(Tokenizer(), ImageProcessor.Load(Path.Combine(BaseDir, "preprocessor_config.json")));

    /// <summary>The base model with, optionally, one PEFT adapter active (the policy of an expert), in the run's dtypes.</summary>
    public LoadedModel LoadModel(string modelDir, string? adapterDir = null, string adapterName = "expert") =>
        ModelLoader.Load(new ModelReference(modelDir, adapterDir),
            new ModelLoadOptions { DType = ModelDType, Compute = ComputeDType, AdapterName = adapterName });

    public Qwen25VLGenerator Generator(Qwen25VLForConditionalGeneration model, VisionChatEncoder encoder) =>
        new(model, ids => encoder.Tokenizer.Decode(ids, skipSpecial: true));
}
