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
    /// Scaled dot-product attention over [batch, heads, seq, headDim] with grouped-query attention (fewer key/value heads
    /// than query heads; query head h reads key/value head h / groups). <paramref name="mask"/> is boolean (true = attend)
    /// or additive, shaped [batch or 1, 1 or heads, seq, keys]; when given it must already contain causality.
    /// </summary>
    public static Tensor Attention(Tensor q, Tensor k, Tensor v, Tensor? mask = null, bool causal = false)
    {
        using var scope = NewDisposeScope();
        long b = q.shape[0], heads = q.shape[1], s = q.shape[2], d = q.shape[3];
        long kvHeads = k.shape[1], groups = heads / kvHeads;
        if (groups == 1)
            return nn.functional.scaled_dot_product_attention(q, k, v, attn_mask: mask, is_casual: causal && mask is null).MoveToOuterDisposeScope();

        if (causal && mask is null && s > 1)
        {
            // The kernel's causal flag needs query i aligned with key i: repeat keys/values per group (one copy of K/V).
            var kr = k.unsqueeze(2).expand(b, kvHeads, groups, k.shape[2], d).reshape(b, heads, k.shape[2], d);
            var vr = v.unsqueeze(2).expand(b, kvHeads, groups, v.shape[2], d).reshape(b, heads, v.shape[2], d);
            return nn.functional.scaled_dot_product_attention(q, kr, vr, is_casual: true).MoveToOuterDisposeScope();
        }

        // Fold the query heads of a group into the sequence axis, [b, kv, groups·s, d], so K/V are read without copies
        // (the decode step's memory traffic is dominated by the cache). Mask rows are repeated to match.
        var qg = q.reshape(b, kvHeads, groups * s, d);
        Tensor? mg = null;
        if (mask is not null)
        {
            long mb = mask.shape[0], mh = mask.shape[1], keys = mask.shape[3];
            mg = mh == 1
                ? mask.unsqueeze(2).expand(mb, 1, groups, s, keys).reshape(mb, 1, groups * s, keys)
                : mask.reshape(mb, kvHeads, groups * s, keys);
        }
        var o = nn.functional.scaled_dot_product_attention(qg, k, v, attn_mask: mg);
        return o.view(b, heads, s, d).MoveToOuterDisposeScope();
    }
}
