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
        using (no_grad())
        using (var scope = NewDisposeScope())
        {
            var (ids, mask, padded) = PromptBatch.LeftPad(prompts.TokenIds, config.PaddingTokenId);
            long promptLength = ids.shape[1];
            using var cache = new KvCache(config, prompts.Count, promptLength + Math.Max(1, options.MaxNewTokens), model.DType, model.Device);
            Tensor? attention = padded ? mask : null;
            var (hidden, deltas) = model.Prefill(ids.to(model.Device), attention, prompts.PixelValues, prompts.ImageGridThw, cache);
            var logits = model.Logits(hidden.narrow(1, hidden.shape[1] - 1, 1).squeeze(1));
            hidden.Dispose();
            return Decode(prompts.Count, logits, deltas, cache, attention, options);
        }
    }

    /// <summary>
    /// <see cref="Generate"/> for sequences that share prompts (a GRPO group): <paramref name="prompts"/> holds each distinct
    /// prompt once and sequence i continues prompt <paramref name="promptOf"/>[i]. Each prompt is prefilled once and its
    /// keys/values are copied to its sequences; decoding is then the same batched loop, one row per sequence.
    /// </summary>
    public IReadOnlyList<GeneratedSequence> Generate(PromptBatch prompts, IReadOnlyList<int> promptOf, GenerationOptions options)
    {
        options.Validate();
        if (promptOf.Count == 0) throw new ArgumentException("no sequences to generate");
        if (promptOf.Any(p => p < 0 || p >= prompts.Count)) throw new ArgumentException($"a prompt index is outside the {prompts.Count} prompts");
        var config = model.Config;
        using (no_grad())
        using (var scope = NewDisposeScope())
        {
            var (ids, mask, padded) = PromptBatch.LeftPad(prompts.TokenIds, config.PaddingTokenId);
            long promptLength = ids.shape[1];
            var index = tensor(promptOf.Select(p => (long)p).ToArray(), device: model.Device);
            Tensor hidden, deltas;
            KvCache cache;
            using (var shared = new KvCache(config, prompts.Count, promptLength, model.DType, model.Device))
            {
                (hidden, deltas) = model.Prefill(ids.to(model.Device), padded ? mask : null, prompts.PixelValues, prompts.ImageGridThw, shared);
                cache = shared.Select(index, promptLength + Math.Max(1, options.MaxNewTokens));
            }
            using (cache)
            {
                var logits = model.Logits(hidden.narrow(1, hidden.shape[1] - 1, 1).squeeze(1)).index_select(0, index);
                hidden.Dispose();
                var attention = padded ? mask.to(model.Device).index_select(0, index) : null;
                return Decode(promptOf.Count, logits, deltas.to(model.Device).index_select(0, index), cache, attention, options);
            }
        }
    }

    /// <summary>The decoding loop after a prefill: <paramref name="logits"/> [batch, vocab] predict the first new token.</summary>
    IReadOnlyList<GeneratedSequence> Decode(int batch, Tensor logits, Tensor deltas, KvCache cache, Tensor? attention, GenerationOptions options)
    {
        var config = model.Config;
        var tokens = Enumerable.Range(0, batch).Select(_ => new List<int>()).ToArray();
        var logProbs = Enumerable.Range(0, batch).Select(_ => new List<float>()).ToArray();
        var finished = new bool[batch];
        var stops = new HashSet<int>(options.StopTokenIds);
        using var generator = new Generator((ulong)options.Seed);
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
    /// <see cref="CompletionLogProbs"/> for completions that share prompts (a GRPO group): <paramref name="prompts"/> holds
    /// each distinct prompt once and <paramref name="promptOf"/>[i] is the prompt of completion i. Each prompt is encoded
    /// once, its keys/values are copied to its completions (differentiably), and the completions are decoded in one pass
    /// on that cache: the values of <see cref="Generate"/>'s own path (cache + rope deltas), for a fraction of the prompt
    /// work when many completions share a prompt. Same result layout: [completions, longest] right-aligned, and a mask.
    /// </summary>
    public (Tensor LogProbs, Tensor Mask) SharedPromptLogProbs(PromptBatch prompts, IReadOnlyList<int> promptOf,
        IReadOnlyList<IReadOnlyList<int>> completions, double temperature = 1.0)
    {
        if (promptOf.Count != completions.Count) throw new ArgumentException($"{promptOf.Count} prompt indices for {completions.Count} completions");
        if (promptOf.Any(p => p < 0 || p >= prompts.Count)) throw new ArgumentException($"a prompt index is outside the {prompts.Count} prompts");
        if (prompts.TokenIds.Any(p => p.Count == 0)) throw new ArgumentException("a prompt is empty: the first completion token needs a token before it");
        using var scope = NewDisposeScope();
        var config = model.Config;
        int n = completions.Count;
        int longest = completions.Count == 0 ? 0 : completions.Max(c => c.Count);
        var device = model.Device;
        if (longest == 0) return (zeros(n, 0).MoveToOuterDisposeScope(), zeros(n, 0).MoveToOuterDisposeScope());

        var (ids, promptMask, padded) = PromptBatch.LeftPad(prompts.TokenIds, config.PaddingTokenId);
        long promptLength = ids.shape[1];
        using var shared = new KvCache(config, prompts.Count, promptLength, model.DType, device);
        var (promptHidden, deltas) = model.Prefill(ids.to(device), padded ? promptMask : null, prompts.PixelValues, prompts.ImageGridThw, shared);
        var index = tensor(promptOf.Select(p => (long)p).ToArray(), device: device);
        using var cache = shared.Select(index, promptLength + longest);

        // Completions left-aligned after their prompt, right-padded; padding is masked out of attention and of the result.
        var tokens = new long[n * longest];
        var valid = new float[n * longest];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < longest; j++)
            {
                bool real = j < completions[i].Count;
                tokens[i * longest + j] = real ? completions[i][j] : config.PaddingTokenId;
                valid[i * longest + j] = real ? 1f : 0f;
            }
        var tokenT = tensor(tokens, new long[] { n, longest }).to(device);
        var validT = tensor(valid, new long[] { n, longest }).to(device);
        var attention = cat(new[] { promptMask.to(device).index_select(0, index), validT.to_type(ScalarType.Int64) }, 1);
        var hidden = model.DecodeStep(tokenT, deltas.to(device).index_select(0, index), cache, attention);
        // Token j is predicted by the hidden state before it: the prompt's last for j = 0, else completion token j − 1.
        var lastPrompt = promptHidden.narrow(1, promptLength - 1, 1).index_select(0, index);
        var predicting = longest == 1 ? lastPrompt : cat(new[] { lastPrompt, hidden.narrow(1, 0, longest - 1) }, 1);
        var logits = model.Logits(predicting).to_type(ScalarType.Float32);
        if (temperature != 1.0) logits = logits / temperature;
        var left = logits.log_softmax(-1).gather(-1, tokenT.unsqueeze(-1)).squeeze(-1) * validT;

        // Right-align as CompletionLogProbs does: column c of row i reads left column c − (longest − |completion i|).
        var shift = new long[n * longest];
        var rightValid = new float[n * longest];
        for (int i = 0; i < n; i++)
        {
            int offset = longest - completions[i].Count;
            for (int c = 0; c < longest; c++)
            {
                shift[i * longest + c] = Math.Max(0, c - offset);
                rightValid[i * longest + c] = c >= offset ? 1f : 0f;
            }
        }
        var rightMask = tensor(rightValid, new long[] { n, longest }).to(device);
        var right = left.gather(1, tensor(shift, new long[] { n, longest }).to(device)) * rightMask;
        return (right.MoveToOuterDisposeScope(), rightMask.MoveToOuterDisposeScope());
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
