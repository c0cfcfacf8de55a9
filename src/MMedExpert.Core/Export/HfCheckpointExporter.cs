using MMedExpert.Core.IO;
using MMedExpert.Core.Lora;
using MMedExpert.Core.Model;
using MMedExpert.Core.Model.Loading;
using MMedExpert.Core.Tokenization;
using static TorchSharp.torch;

namespace MMedExpert.Core.Export;

/// <summary>
/// Writes a model of this project as the files other Qwen2.5-VL tools load unchanged (`mmx export`):
/// <list type="bullet">
/// <item><see cref="ExportModel"/>: a whole checkpoint in the Hugging Face layout of transformers 4.50 — config.json
///   (<see cref="HfModelConfig"/>), the weights under the Hub names (<see cref="Qwen25VLWeights.StateToSave"/>: visual.*,
///   model.*, lm_head.* unless tied; sharded with an index above <see cref="ExportOptions.MaxShardBytes"/>), an adapter
///   folded into the base weights (<see cref="LoraAdapters.Merge"/>, in fp32, then stored in the export's dtype), and the
///   tokenizer, processor and generation files (<see cref="HfTokenizerFiles"/>, <see cref="HfProcessorFiles"/>,
///   <see cref="HfGenerationConfig"/>);</item>
/// <item><see cref="ExportAdapter"/>: the adapter alone in PEFT's layout (<see cref="PeftAdapter.Save"/>), its
///   base_model_name_or_path naming the base.</item>
/// </list>
/// The model is loaded through <see cref="ModelLoader"/> (so whatever loads for `mmx generate` exports). The output folder
/// is built beside --out and renamed into place (<see cref="AtomicFile.WriteDirectory"/>); a non-empty --out is refused
/// unless forced, and an output that would overwrite its own input is refused always.
/// </summary>
public static class HfCheckpointExporter
{
    const string AdapterName = "export";

    public static ExportResult ExportModel(ModelReference reference, string outDir, ExportOptions? options = null)
    {
        options ??= new ExportOptions();
        string output = CheckOutput(reference, outDir, options.Force);
        var dtype = WeightDType(options.DType, reference.BaseDir);
        string tokenizerPath = Path.Combine(reference.BaseDir, HfTokenizerFiles.TokenizerFileName);
        var tokenizer = File.Exists(tokenizerPath) ? Qwen2Tokenizer.FromFile(tokenizerPath) : null;

        // Loaded in fp32 whatever the stored dtype: the merge adds ΔW at full precision, rounded once when stored.
        using var loaded = ModelLoader.Load(reference, new ModelLoadOptions { DType = ScalarType.Float32, AdapterName = AdapterName });
        if (loaded.Lora is { } lora) lora.Merge(AdapterName);
        var config = tokenizer is null ? loaded.Model.Config : HfTokenizerFiles.ConsistentIds(loaded.Model.Config, tokenizer);

        using var scope = NewDisposeScope();
        var state = Qwen25VLWeights.StateToSave(loaded.Model)
            .Select(kv => new KeyValuePair<string, Tensor>(kv.Key, kv.Value.detach().to_type(dtype).contiguous()))
            .ToList();
        // The adapter lives in the layers' adapter slots, not the state dict; a name that says otherwise is a bug here.
        if (state.FirstOrDefault(kv => kv.Key.Contains("lora", StringComparison.OrdinalIgnoreCase)).Key is { } stray)
            throw new ExportException($"{reference.BaseDir}: tensor '{stray}' is an adapter tensor, which a merged checkpoint must not hold");

        AtomicFile.WriteDirectory(output, tmp =>
        {
            Checkpoint.Save(tmp, state, options.MaxShardBytes);
            File.WriteAllText(Path.Combine(tmp, ModelReference.CheckpointConfigFile), HfModelConfig.ToJson(config, dtype));
            HfGenerationConfig.Write(tmp, config, tokenizer?.EndOfText);
            HfProcessorFiles.Write(tmp, Path.Combine(reference.BaseDir, HfProcessorFiles.PreprocessorFileName));
            if (tokenizer is not null) HfTokenizerFiles.Write(tmp, tokenizerPath, tokenizer, config.MaxPositionEmbeddings);
        });
        return new ExportResult(output, reference.AdapterDir is null ? "model" : "merged", HfModelConfig.DTypeName(dtype), state.Count,
            ListFiles(output), reference.BaseDir, reference.AdapterDir);
    }

    public static ExportResult ExportAdapter(ModelReference reference, string outDir, ExportOptions? options = null)
    {
        options ??= new ExportOptions();
        if (reference.AdapterDir is null)
            throw new ExportException($"{reference.BaseDir}: --adapter exports a LoRA adapter, but this is a whole checkpoint (no {PeftAdapterConfig.FileName})");
        if (options.DType is not ("auto" or "fp32"))
            throw new ExportException($"--dtype {options.DType}: an adapter is exported with its factors as loaded (fp32); use auto or fp32");
        string output = CheckOutput(reference, outDir, options.Force);
        // Loading attaches it to its base: an adapter that does not fit is refused here, not by the tool it is exported for.
        using var loaded = ModelLoader.Load(reference, new ModelLoadOptions { DType = ScalarType.Float32, AdapterName = AdapterName });
        int tensors = loaded.Lora!.Modules(AdapterName).Count * 2;
        PeftAdapter.Save(loaded.Lora, AdapterName, output, options.BaseModelName ?? reference.BaseDir);
        return new ExportResult(output, "adapter", "float32", tensors, ListFiles(output), reference.BaseDir, reference.AdapterDir);
    }

    /// <summary>auto: bf16 when every floating tensor of the checkpoint is stored in bf16, otherwise fp32.</summary>
    public static ScalarType WeightDType(string name, string baseDir) => name.ToLowerInvariant() switch
    {
        "fp32" or "float32" => ScalarType.Float32,
        "bf16" or "bfloat16" => ScalarType.BFloat16,
        "auto" => StoredDType(baseDir),
        _ => throw new ExportException($"--dtype: '{name}' is not auto, fp32 or bf16"),
    };

    static ScalarType StoredDType(string baseDir)
    {
        using var checkpoint = Checkpoint.Open(baseDir);
        var floating = checkpoint.Names.Select(n => checkpoint.Info(n).DType)
            .Where(d => d is SafetensorsDType.F32 or SafetensorsDType.F16 or SafetensorsDType.BF16 or SafetensorsDType.F64).ToList();
        return floating.Count > 0 && floating.All(d => d == SafetensorsDType.BF16) ? ScalarType.BFloat16 : ScalarType.Float32;
    }

    /// <summary>The full output path, refusing a non-empty folder without <paramref name="force"/> and any output that is,
    /// holds or lies inside one of the inputs (replacing it would delete what is being exported).</summary>
    static string CheckOutput(ModelReference reference, string outDir, bool force)
    {
        string output = Path.GetFullPath(outDir).TrimEnd(Path.DirectorySeparatorChar);
        foreach (var input in new[] { reference.BaseDir, reference.AdapterDir })
        {
            if (input is null) continue;
            string full = Path.GetFullPath(input).TrimEnd(Path.DirectorySeparatorChar);
            if (Within(full, output) || Within(output, full))
                throw new ExportException($"{outDir}: the output folder overlaps the input {full}; export somewhere else");
        }
        if (File.Exists(output)) throw new ExportException($"{outDir}: exists and is a file, not a folder");
        if (Directory.Exists(output) && Directory.EnumerateFileSystemEntries(output).Any() && !force)
            throw new ExportException($"{outDir}: the output folder is not empty (use --force to replace it)");
        return output;
    }

    static bool Within(string path, string folder) =>
        path == folder || path.StartsWith(folder + Path.DirectorySeparatorChar, StringComparison.Ordinal);

    static IReadOnlyList<string> ListFiles(string dir) =>
        Directory.GetFiles(dir).Select(Path.GetFileName).OrderBy(n => n, StringComparer.Ordinal).ToList()!;
}
