using TorchSharp;
using static TorchSharp.torch;

namespace MMedExpert.Core.Model.Text;

/// <summary>A pre-norm decoder layer: x + attn(norm(x)), then x + mlp(norm(x)).</summary>
public sealed class Qwen25VLDecoderLayer : nn.Module
{
    public readonly Qwen25VLAttention self_attn;
    public readonly Qwen2Mlp mlp;
    public readonly RmsNorm input_layernorm;
    public readonly RmsNorm post_attention_layernorm;

    public Qwen25VLDecoderLayer(Qwen25VLConfig config, int layerIndex, ScalarType dtype = ScalarType.Float32) : base(nameof(Qwen25VLDecoderLayer))
    {
        self_attn = new Qwen25VLAttention(config, layerIndex, dtype);
        mlp = new Qwen2Mlp(config.HiddenSize, config.IntermediateSize, dtype);
        input_layernorm = new RmsNorm("input_layernorm", config.HiddenSize, config.RmsNormEps, dtype);
        post_attention_layernorm = new RmsNorm("post_attention_layernorm", config.HiddenSize, config.RmsNormEps, dtype);
        RegisterComponents();
    }

    public Tensor forward(Tensor x, Tensor cos, Tensor sin, Tensor? mask, bool causal, KvCache? cache)
    {
        using var scope = NewDisposeScope();
        var h = x + self_attn.forward(input_layernorm.forward(x), cos, sin, mask, causal, cache);
        var o = h + mlp.forward(post_attention_layernorm.forward(h));
        return o.MoveToOuterDisposeScope();
    }
}
