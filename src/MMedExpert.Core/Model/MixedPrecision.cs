using TorchSharp;
using static TorchSharp.torch;

namespace MMedExpert.Core.Model;

/// <summary>
/// Mixed precision: parameters stay fp32 (the optimizer's master copy, updated in full precision), while the matrix
/// products, which are nearly all of a step's arithmetic, run in a lower compute dtype (bf16: about 4× the fp32 matmul
/// rate on AVX-512 BF16 CPUs and on tensor-core GPUs). Each product casts its operands, multiplies, and casts the result
/// back, so norms, softmax, residual sums and the loss stay fp32; gradients flow through the casts to the fp32 weights.
/// bf16 keeps fp32's exponent range, so no loss scaling is needed (unlike fp16).
/// </summary>
public static class MixedPrecision
{
    /// <summary>Parses "fp32"/"float32" (null: no mixed precision) or "bf16"/"bfloat16"; anything else throws.</summary>
    public static ScalarType? Parse(string name, string what = "--dtype") => name.ToLowerInvariant() switch
    {
        "fp32" or "float32" => null,
        "bf16" or "bfloat16" => ScalarType.BFloat16,
        _ => throw new ArgumentException($"{what} '{name}': expected fp32 or bf16"),
    };

    /// <summary>Sets the compute dtype of every linear layer of <paramref name="model"/> (null: compute in the weights' dtype).</summary>
    public static void Apply(nn.Module model, ScalarType? compute)
    {
        foreach (var (_, m) in model.named_modules())
            if (m is AdaptableLinear linear) linear.ComputeDType = compute;
        if (model is Qwen25VLForConditionalGeneration vlm) vlm.ComputeDType = compute;
    }

    /// <summary>x·Wᵀ + b with the product in <paramref name="compute"/> (when it differs from W's dtype), result in x's dtype.</summary>
    public static Tensor Linear(Tensor x, Tensor weight, Tensor? bias, ScalarType? compute)
    {
        if (compute is not { } c || c == weight.dtype) return nn.functional.linear(x, weight, bias);
        using var scope = NewDisposeScope();
        var y = nn.functional.linear(x.to_type(c), weight.to_type(c), bias?.to_type(c));
        return y.to_type(x.dtype).MoveToOuterDisposeScope();
    }
}
