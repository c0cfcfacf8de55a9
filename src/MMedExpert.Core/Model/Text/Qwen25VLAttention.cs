using TorchSharp;
using static TorchSharp.torch;

namespace MMedExpert.Core.Model.Text;

/// <summary>
/// Self-attention of a decoder layer: grouped-query attention with biases on the q/k/v projections and none on the output
/// projection, M-RoPE applied to queries and keys, optional key/value cache.
/// </summary>
public sealed class Qwen25VLAttention : nn.Module
{
    public readonly AdaptableLinear q_proj;
    public readonly AdaptableLinear k_proj;
    public readonly AdaptableLinear v_proj;
    public readonly AdaptableLinear o_proj;

    readonly int layerIndex;
    readonly long heads, kvHeads, headDim;

    public Qwen25VLAttention(Qwen25VLConfig config, int layerIndex, ScalarType dtype = ScalarType.Float32) : base(nameof(Qwen25VLAttention))
    {
        this.layerIndex = layerIndex;
        heads = config.NumAttentionHeads;
        kvHeads = config.NumKeyValueHeads;
        headDim = config.HeadDim;
        q_proj = new AdaptableLinear(nameof(q_proj), config.HiddenSize, heads * headDim, hasBias: true, dtype: dtype);
        k_proj = new AdaptableLinear(nameof(k_proj), config.HiddenSize, kvHeads * headDim, hasBias: true, dtype: dtype);
        v_proj = new AdaptableLinear(nameof(v_proj), config.HiddenSize, kvHeads * headDim, hasBias: true, dtype: dtype);
        o_proj = new AdaptableLinear(nameof(o_proj), heads * headDim, config.HiddenSize, hasBias: false, dtype: dtype);
        RegisterComponents();
    }

    /// <param name="x">[batch, seq, hidden]</param>
    /// <param name="cos">[batch, 1, seq, head_dim] from <see cref="MultimodalRotaryEmbedding"/></param>
    /// <param name="mask">boolean [batch, 1, seq, keys] or null (see <see cref="CausalMask"/>)</param>
    public Tensor forward(Tensor x, Tensor cos, Tensor sin, Tensor? mask, bool causal, KvCache? cache)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], s = x.shape[1];
        var q = q_proj.forward(x).view(b, s, heads, headDim).transpose(1, 2);
        var k = k_proj.forward(x).view(b, s, kvHeads, headDim).transpose(1, 2);
        var v = v_proj.forward(x).view(b, s, kvHeads, headDim).transpose(1, 2);
        q = Kernels.ApplyRotary(q, cos, sin);
        k = Kernels.ApplyRotary(k, cos, sin);
        if (cache is not null) (k, v) = cache.Append(layerIndex, k, v);
        var o = Kernels.Attention(q, k, v, mask, causal);
        o = o.transpose(1, 2).reshape(b, s, heads * headDim);
        return o_proj.forward(o).MoveToOuterDisposeScope();
    }
}
