using System.CommandLine;
using MMedExpert.Cli.Pipeline;
using MMedExpert.Cli.Pipeline.Stages;
using MMedExpert.Core.Export;
using MMedExpert.Core.Model.Loading;

namespace MMedExpert.Cli.Commands;

/// <summary>
/// `mmx export --model RUN_OR_DIR --out DIR [--adapter]`: writes a model as a standard Hugging Face Qwen2.5-VL
/// checkpoint (an adapter merged into its base) that transformers and vLLM load unchanged, or, with --adapter, the
/// adapter alone in PEFT's layout (docs/export.md). --model is a checkpoint folder, an adapter folder (on its
/// base_model_name_or_path or --base), a name inside --run (RUN/&lt;name&gt;, RUN/experts/&lt;name&gt;,
/// RUN/merged/&lt;name&gt;), or a run folder itself: its main merged model.
/// </summary>
public static class ExportCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "Checkpoint folder, PEFT adapter folder, run folder (its main merged model), or a name inside --run", Required = true };
        var outDir = new Option<string>("--out") { Description = "Output folder (built beside it, then renamed into place)", Required = true };
        var adapter = new Option<bool>("--adapter") { Description = "Export the LoRA adapter alone (PEFT: adapter_config.json + adapter_model.safetensors) instead of a merged model" };
        var baseDir = new Option<string?>("--base") { Description = "Base checkpoint of an adapter --model (default: its base_model_name_or_path)" };
        var run = new Option<string?>("--run") { Description = "Run folder in which --model names a stage output (experts/<name>, merged/<name>)" };
        var dtype = new Option<string>("--dtype") { Description = "Weights of a merged export: auto (the base's stored dtype), fp32 or bf16", DefaultValueFactory = _ => "auto" };
        var baseName = new Option<string?>("--base-name") { Description = "With --adapter: base_model_name_or_path to write (default: the base folder's full path), e.g. a Hub id" };
        var shard = new Option<long>("--max-shard-mb") { Description = "Shard the weights above this many MiB (model.safetensors.index.json)", DefaultValueFactory = _ => 5120 };
        var force = new Option<bool>("--force") { Description = "Replace a non-empty --out (once the new export is complete)" };
        var json = new Option<bool>("--json") { Description = "Print what was written as JSON" };
        var cmd = new Command("export", "Write a model as a Hugging Face Qwen2.5-VL checkpoint (LoRA merged) or a PEFT adapter, for transformers and vLLM");
        foreach (var o in new Option[] { model, outDir, adapter, baseDir, run, dtype, baseName, shard, force, json }) cmd.Options.Add(o);
        cmd.SetAction(parse =>
        {
            CommandKit.ConfigureTorch(parse);
            if (parse.GetValue(shard) <= 0) throw new ExportException($"--max-shard-mb: must be positive (got {parse.GetValue(shard)})");
            var reference = Resolve(parse.GetValue(model)!, parse.GetValue(baseDir), parse.GetValue(run));
            var options = new ExportOptions
            {
                DType = parse.GetValue(dtype)!,
                Force = parse.GetValue(force),
                MaxShardBytes = parse.GetValue(shard) << 20,
                BaseModelName = parse.GetValue(baseName),
            };
            if (options.BaseModelName is not null && !parse.GetValue(adapter))
                throw new ExportException("--base-name: applies only with --adapter");
            var result = parse.GetValue(adapter)
                ? HfCheckpointExporter.ExportAdapter(reference, parse.GetValue(outDir)!, options)
                : HfCheckpointExporter.ExportModel(reference, parse.GetValue(outDir)!, options);
            if (parse.GetValue(json)) CommandKit.WriteSnakeJson(result);
            else
            {
                string what = result.Kind switch
                {
                    "merged" => $"{result.BaseDir} with {result.AdapterDir} merged",
                    "adapter" => $"adapter {result.AdapterDir} (base {result.BaseDir})",
                    _ => result.BaseDir,
                };
                Console.WriteLine($"exported {what} to {result.OutDir}: {result.Tensors} tensors ({result.Dtype}), {string.Join(", ", result.Files)}");
            }
            return 0;
        });
        return cmd;
    }

    /// <summary>
    /// A run folder (config.json of a pipeline run beside stages/ or merged/, no weights) stands for its main merged
    /// model: the first merge method over the experts of the first advantage (<see cref="MergeStage.Merges"/>); anything
    /// else is resolved by <see cref="ModelReference.Resolve"/>.
    /// </summary>
    static ModelReference Resolve(string model, string? baseDir, string? runDir)
    {
        string full = Path.GetFullPath(model);
        if (runDir is null && IsRunFolder(full))
        {
            if (baseDir is not null) throw new ExportException($"{model}: a run folder names its merged model; --base applies only to an adapter folder");
            var config = PipelineConfig.Load(Path.Combine(full, "config.json"));
            var (method, from) = MergeStage.Merges(config).First();
            string merged = new RunContext(full, config).MergedDir(method, from);
            if (!Directory.Exists(merged))
                throw new ExportException($"{model}: the run has no main merged model yet ({merged} is missing; run its merge stage, or name a model inside it with --run)");
            return ModelReference.Resolve(merged);
        }
        return ModelReference.Resolve(model, baseDir, runDir);
    }

    static bool IsRunFolder(string dir) =>
        File.Exists(Path.Combine(dir, "config.json"))
        && (Directory.Exists(Path.Combine(dir, "stages")) || Directory.Exists(Path.Combine(dir, "merged")))
        && !Directory.EnumerateFiles(dir, "*.safetensors").Any()
        && !File.Exists(Path.Combine(dir, "model.safetensors.index.json"));
}
