using static TorchSharp.torch;

namespace MMedExpert.Core.Model.Loading;

/// <summary>How <see cref="ModelLoader"/> builds the model: weight dtype, matmul dtype and the adapter's name.</summary>
public sealed record ModelLoadOptions
{
    /// <summary>The dtype the weights are stored in memory in (fp32 or bf16).</summary>
    public ScalarType DType { get; init; } = ScalarType.Float32;
    /// <summary>The matmul dtype of <see cref="MixedPrecision"/> (null: the weights' own).</summary>
    public ScalarType? Compute { get; init; }
    /// <summary>The name the adapter is attached (and active) under; training code saves it by this name.</summary>
    public string AdapterName { get; init; } = "adapter";
}
