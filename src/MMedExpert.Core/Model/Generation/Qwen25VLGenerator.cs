using MMedExpert.Core.Model.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace MMedExpert.Core.Model.Generation;

/// <summary>
/// Batched generation and scoring with a Qwen2.5-VL model: prompts are left-padded into one batch, prefilled once into a
/// preallocated key/value cache, then decoded one token per step for every sample until each one stops or
/// max_new_tokens is reached.
/// </summary>
public sealed class Qwen25VLGenerator
{
    readonly Qwen25VLForConditionalGeneration model;
    readonly Func<IReadOnlyList<int>, string>? decode;

    /// <param name="decode">turns token ids into text (the tokenizer's Decode); without it texts are empty</param>
    public Qwen25VLGenerator(Qwen25VLForConditionalGeneration model, Func<IReadOnlyList<int>, string>? decode = null)
    {
        this.model = model;
        this.decode = decode;
    }

    public Qwen25VLForConditionalGeneration Model => model;

    public IReadOnlyList<GeneratedSequence> Generate(PromptBatch prompts, GenerationOptions options)
    {
        options.Validate();
        var config = model.Config;
        int batch = prompts.Count;
        var tokens = Enumerable.Range(0, batch).Select(_ => new List<int>()).ToArray();
        var logProbs = Enumerable.Range(0, batch).Select(_ => new List<float>()).ToArray();
        var finished = new bool[batch];
        var stops = new HashSet<int>(options.StopTokenIds);

        using (no_grad())
        using (var scope = NewDisposeScope())
        {
            var (ids, mask, padded) = PromptBatch.LeftPad(prompts.TokenIds, config.PaddingTokenId);
            long promptLength = ids.shape[1];
            using var cache = new KvCache(config, batch, promptLength + Math.Max(1, options.MaxNewTokens), model.DType, model.Device);
            var generator = new Generator((ulong)options.Seed);
            Tensor? attention = padded ? mask : null;

            var (hidden, deltas) = model.Prefill(ids.to(model.Device), attention, prompts.PixelValues, prompts.ImageGridThw, cache);
            var logits = model.Logits(hidden.narrow(1, hidden.shape[1] - 1, 1).squeeze(1));
            hidden.Dispose();

            for (int step = 0; step < options.MaxNewTokens; step++)
            {
                using var stepScope = NewDisposeScope();
                var next = TokenSampler.Sample(logits, options, generator);
                var chosen = logits.to_type(ScalarType.Float32).log_softmax(-1).gather(1, next.view(batch, 1)).squeeze(1);
                long[] nextIds = next.cpu().data<long>().ToArray();
                float[] nextLogProbs = chosen.cpu().data<float>().ToArray();
                for (int b = 0; b < batch; b++)
                {
                    if (finished[b]) continue;
                    tokens[b].Add((int)nextIds[b]);
                    logProbs[b].Add(nextLogProbs[b]);
                    if (stops.Contains((int)nextIds[b])) finished[b] = true;
                }
                if (finished.All(f => f) || step == options.MaxNewTokens - 1) break;

                // Finished samples are fed padding; their outputs are no longer read.
                var feed = tensor(Enumerable.Range(0, batch).Select(b => finished[b] ? (long)config.PaddingTokenId : nextIds[b]).ToArray(), new long[] { batch, 1 });
                if (attention is not null)
                {
                    var grown = cat(new[] { attention, ones(batch, 1, dtype: attention.dtype, device: attention.device) }, 1);
                    attention = grown.MoveToOuterDisposeScope();
                }
                var h = model.DecodeStep(feed, deltas, cache, attention);
                logits.Dispose();
                logits = model.Logits(h.squeeze(1)).MoveToOuterDisposeScope();
            }
        }

        var results = new GeneratedSequence[batch];
        for (int b = 0; b < batch; b++)
        {
            bool stopped = tokens[b].Count > 0 && stops.Contains(tokens[b][^1]);
            var textIds = stopped ? tokens[b].Take(tokens[b].Count - 1).ToList() : tokens[b];
            results[b] = new GeneratedSequence(tokens[b], decode?.Invoke(textIds) ?? "", logProbs[b], stopped ? FinishReason.Stop : FinishReason.Length);
        }
        return results;
    }

    /// <summary>
    /// Log-probabilities of given completion tokens after their prompts, in one forward pass without gradients: per sample
    /// one value per completion token (the same values <see cref="Generate"/> reports for tokens it generated).
    /// </summary>
    public IReadOnlyList<float[]> ScoreCompletions(PromptBatch prompts, IReadOnlyList<IReadOnlyList<int>> completions)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var (lp, _) = CompletionLogProbs(prompts, completions);
        float[] flat = lp.to_type(ScalarType.Float32).cpu().contiguous().data<float>().ToArray();
        long width = lp.shape[1];
        // Completions are right-aligned in the [batch, longest] result: sample b's values are its last |completion b| columns.
        return completions.Select((c, b) => flat.Skip((int)(b * width + width - c.Count)).Take(c.Count).ToArray()).ToList();
    }

    /// <summary>
    /// The differentiable form of <see cref="ScoreCompletions"/> (for policy-gradient training): log-probabilities
    /// [batch, longest completion] and a mask [batch, longest] (1 for real completion tokens), completions right-aligned.
    /// Logits are divided by <paramref name="temperature"/> first (1 = the model's own distribution).
    /// </summary>
    public (Tensor LogProbs, Tensor Mask) CompletionLogProbs(PromptBatch prompts, IReadOnlyList<IReadOnlyList<int>> completions, double temperature = 1.0)
    {
        if (completions.Count != prompts.Count)
            throw new ArgumentException($"{prompts.Count} prompts but {completions.Count} completions");
        if (prompts.TokenIds.Any(p => p.Count == 0)) throw new ArgumentException("a prompt is empty: the first completion token needs a token before it");
        using var scope = NewDisposeScope();
        var config = model.Config;
        int batch = prompts.Count;
        int longest = completions.Max(c => c.Count);
        var full = prompts.TokenIds.Select((p, b) => (IReadOnlyList<int>)p.Concat(completions[b]).ToList()).ToList();
        var (ids, mask, padded) = PromptBatch.LeftPad(full, config.PaddingTokenId);
        long length = ids.shape[1];

        var targets = new long[batch * longest];
        var valid = new float[batch * longest];
        for (int b = 0; b < batch; b++)
            for (int j = 0; j < completions[b].Count; j++)
            {
                int column = longest - completions[b].Count + j;
                targets[b * longest + column] = completions[b][j];
                valid[b * longest + column] = 1f;
            }
        var targetT = tensor(targets, new long[] { batch, longest }).to(model.Device);
        var validT = tensor(valid, new long[] { batch, longest }).to(model.Device);
        if (longest == 0) return (zeros(batch, 0).MoveToOuterDisposeScope(), validT.MoveToOuterDisposeScope());

        var (hidden, _) = model.Prefill(ids.to(model.Device), padded ? mask : null, prompts.PixelValues, prompts.ImageGridThw);
        // The token at column i is predicted by the hidden state at column i − 1.
        var predicting = hidden.narrow(1, length - longest - 1, longest);
        var logits = model.Logits(predicting).to_type(ScalarType.Float32);
        if (temperature != 1.0) logits = logits / temperature;
        var logProbs = logits.log_softmax(-1).gather(-1, targetT.unsqueeze(-1)).squeeze(-1) * validT;
        return (logProbs.MoveToOuterDisposeScope(), validT.MoveToOuterDisposeScope());
    }
}
