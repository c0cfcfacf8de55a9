namespace MMedExpert.Core.Export;

/// <summary>How <see cref="HfCheckpointExporter"/> writes an export.</summary>
public sealed record ExportOptions
{
    /// <summary>auto (the base checkpoint's stored dtype: bf16 stays bf16), fp32 or bf16. Merged models only.</summary>
    public string DType { get; init; } = "auto";
    /// <summary>Replace a non-empty output folder (only once the new one is complete).</summary>
    public bool Force { get; init; }
    /// <summary>Weights above this size are written as shards plus model.safetensors.index.json.</summary>
    public long MaxShardBytes { get; init; } = 5L << 30;
    /// <summary>Adapter export: the adapter_config.json base_model_name_or_path (default: the base folder's full path).</summary>
    public string? BaseModelName { get; init; }
}

/// <summary>What an export wrote.</summary>
/// <param name="Kind">"model" (a checkpoint as is), "merged" (a checkpoint with an adapter folded in) or "adapter".</param>
/// <param name="Files">The file names written into <paramref name="OutDir"/>, sorted.</param>
public sealed record ExportResult(string OutDir, string Kind, string Dtype, int Tensors, IReadOnlyList<string> Files, string BaseDir, string? AdapterDir);
