using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MMedExpert.Core.Model.Text;

/// <summary>The language model: token embeddings, the decoder layers and the final norm (checkpoint prefix `model.`).</summary>
public sealed class Qwen25VLTextModel : nn.Module
{
    public readonly Embedding embed_tokens;
    public readonly ModuleList<Qwen25VLDecoderLayer> layers;
    public readonly RmsNorm norm;

    readonly MultimodalRotaryEmbedding rotary;

    public Qwen25VLTextModel(Qwen25VLConfig config, ScalarType dtype = ScalarType.Float32) : base(nameof(Qwen25VLTextModel))
    {
        embed_tokens = nn.Embedding(config.VocabSize, config.HiddenSize, dtype: dtype);
        layers = new ModuleList<Qwen25VLDecoderLayer>(Enumerable.Range(0, config.NumHiddenLayers).Select(i => new Qwen25VLDecoderLayer(config, i, dtype)).ToArray());
        norm = new RmsNorm("norm", config.HiddenSize, config.RmsNormEps, dtype);
        rotary = new MultimodalRotaryEmbedding(config.HeadDim, config.RopeTheta, config.MropeSection);
        RegisterComponents();
    }

    /// <summary>
    /// The normalised last hidden states [batch, seq, hidden].
    /// </summary>
    /// <param name="inputsEmbeds">[batch, seq, hidden] (token embeddings with image features already scattered in)</param>
    /// <param name="positionIds">[3, batch, seq] M-RoPE positions (see <see cref="RopeIndex"/>)</param>
    /// <param name="paddingMask">[batch, cached + seq] 1 = token, 0 = padding; null when nothing is padded</param>
    /// <param name="cache">filled in place and advanced by seq when given</param>
    public Tensor forward(Tensor inputsEmbeds, Tensor positionIds, Tensor? paddingMask = null, KvCache? cache = null)
    {
        using var scope = NewDisposeScope();
        long past = cache?.Length ?? 0, seq = inputsEmbeds.shape[1];
        var (cos, sin) = rotary.Compute(positionIds, inputsEmbeds.dtype);
        var (mask, causal) = CausalMask.Build(paddingMask, seq, past, inputsEmbeds.device);
        var h = inputsEmbeds;
        foreach (var layer in layers)
        {
            var next = layer.forward(h, cos, sin, mask, causal, cache);
            if (!ReferenceEquals(h, inputsEmbeds)) h.Dispose();
            h = next;
        }
        cache?.Advance(seq);
        return norm.forward(h).MoveToOuterDisposeScope();
    }
}
