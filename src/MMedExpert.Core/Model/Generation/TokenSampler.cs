using TorchSharp;
using static TorchSharp.torch;

namespace MMedExpert.Core.Model.Generation;

/// <summary>Picks the next token of every sample from its logits: argmax, or a draw after temperature, top-k and top-p.</summary>
public static class TokenSampler
{
    /// <param name="logits">[batch, vocab] (any float dtype; processed in fp32)</param>
    /// <returns>[batch] int64</returns>
    public static Tensor Sample(Tensor logits, GenerationOptions options, Generator generator)
    {
        using var scope = NewDisposeScope();
        var l = logits.to_type(ScalarType.Float32);
        if (options.SuppressTokenIds.Count > 0)
            l = l.index_fill(-1, tensor(options.SuppressTokenIds.Select(i => (long)i).ToArray(), device: l.device), double.NegativeInfinity);
        if (options.Temperature == 0) return l.argmax(-1).MoveToOuterDisposeScope();

        l = l / options.Temperature;
        if (options.TopK > 0 && options.TopK < l.shape[^1])
        {
            var (top, _) = l.topk(options.TopK, dim: -1);
            var kth = top.narrow(-1, options.TopK - 1, 1);
            l = l.masked_fill(l.lt(kth), double.NegativeInfinity);
        }
        if (options.TopP < 1.0)
        {
            var (sorted, order) = l.sort(-1, descending: true);
            var probs = sorted.softmax(-1);
            // Drop a token when the tokens before it already reach p; the most likely token always stays.
            var before = probs.cumsum(-1) - probs;
            var drop = before.ge(options.TopP);
            var dropInVocabOrder = zeros_like(drop).scatter_(-1, order, drop);
            l = l.masked_fill(dropInVocabOrder, double.NegativeInfinity);
        }
        var p = l.softmax(-1);
        return p.multinomial(1, replacement: false, generator: generator).squeeze(-1).MoveToOuterDisposeScope();
    }
}
