using TorchSharp;
using static TorchSharp.torch;

namespace MMedExpert.Core.Model;

/// <summary>
/// The hot operations of the model in one place (attention, rotary embedding, RMSNorm, SwiGLU), so a GPU build can
/// swap in faster kernels without touching the model files. Every function is pure: inputs are never modified.
/// </summary>
public static class Kernels
{
    /// <summary>RMSNorm: x / sqrt(mean(x²) + eps) · weight, computed in fp32 and cast back (as the reference does).</summary>
    public static Tensor RmsNorm(Tensor x, Tensor weight, double eps)
    {
        using var scope = NewDisposeScope();
        var dtype = x.dtype;
        var h = x.to_type(ScalarType.Float32);
        var variance = h.pow(2).mean(new long[] { -1 }, keepdim: true);
        h = h * rsqrt(variance + eps);
        return (weight * h.to_type(dtype)).MoveToOuterDisposeScope();
    }

    /// <summary>SwiGLU gate: silu(gate) · up.</summary>
    public static Tensor SiluMul(Tensor gate, Tensor up) => nn.functional.silu(gate).mul_(up);

    /// <summary>Rotates the two halves of the last dimension: [-x2, x1].</summary>
    public static Tensor RotateHalf(Tensor x)
    {
        long half = x.shape[^1] / 2;
        using var x1 = x.narrow(-1, 0, half);
        using var x2 = x.narrow(-1, half, half);
        using var neg = x2.neg();
        return cat(new[] { neg, x1 }, -1);
    }

    /// <summary>Rotary embedding: x·cos + rotate_half(x)·sin (cos/sin broadcast against x).</summary>
    public static Tensor ApplyRotary(Tensor x, Tensor cos, Tensor sin)
    {
        using var scope = NewDisposeScope();
        return (x * cos + RotateHalf(x) * sin).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Scaled dot-product attention over [batch, heads, seq, headDim]. Key/value heads are repeated to match the query
    /// heads (grouped-query attention). <paramref name="mask"/> is additive (0 / -inf) or boolean (true = attend).
    /// </summary>
    public static Tensor Attention(Tensor q, Tensor k, Tensor v, Tensor? mask = null, bool causal = false)
    {
        using var scope = NewDisposeScope();
        long groups = q.shape[1] / k.shape[1];
        if (groups > 1)
        {
            k = k.repeat_interleave(groups, dim: 1);
            v = v.repeat_interleave(groups, dim: 1);
        }
        var o = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask: mask, is_casual: causal && mask is null);
        return o.MoveToOuterDisposeScope();
    }
}
