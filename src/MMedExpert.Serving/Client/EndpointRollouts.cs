using System.Diagnostics;
using MMedExpert.Core.Model.Generation;
using MMedExpert.Core.Training;
using MMedExpert.Core.Training.Grpo;
using static TorchSharp.torch;

namespace MMedExpert.Serving.Client;

/// <summary>
/// GRPO rollouts from an OpenAI-compatible endpoint (vLLM, SGLang, <c>mmx serve</c>) while learning stays local. Per
/// distinct prompt one chat request with <c>n</c> = its number of completions (system prompt, images as data URLs,
/// temperature / top_p / max_tokens / seed from the options, the suppressed tokens as logit_bias −100), asking for
/// log-probabilities with token ids (vLLM's <c>return_tokens_as_token_ids</c>). The completion's ids are those ids; when
/// it ended on a stop token (finish_reason "stop") that token is appended, since the endpoint leaves it out while the
/// local generator keeps it (the policy must learn to stop). Texts are decoded from the ids with the local tokenizer, as
/// the local path does.
/// <para>
/// The endpoint gives no log-probability for the appended stop token, and its numbers come from another engine (kernels,
/// precision, batching). The log-probabilities returned are therefore recomputed with the trainer's own model and
/// current adapter (one pass without gradients, as verl does), exactly what local rollouts report; the mean and largest
/// |endpoint − local| over the endpoint's tokens are step metrics (<c>rollout_logprob_gap</c>, <c>rollout_logprob_gap_max</c>):
/// near 0 when the endpoint serves the same weights and adapter, large when it does not.
/// </para>
/// </summary>
public sealed class EndpointRollouts : IRolloutSource
{
    readonly OpenAiClient client;
    readonly string model;
    readonly VisionChatEncoder encoder;
    readonly Qwen25VLGenerator scorer;
    readonly AdapterPublisher? publisher;
    readonly int concurrency;
    double gapSum, gapMax, rescoreSeconds, endpointSeconds;
    long gapCount;

    /// <param name="model">the model name requests ask for (the publisher's LoRA name when it publishes)</param>
    /// <param name="scorer">the trainer's generator over its model: recomputes the log-probabilities</param>
    /// <param name="publisher">publishes the current adapter at each step start; null: the endpoint's model is used as is</param>
    public EndpointRollouts(OpenAiClient client, string model, VisionChatEncoder encoder, Qwen25VLGenerator scorer,
        AdapterPublisher? publisher = null, int concurrency = 8)
    {
        if (concurrency < 1) throw new ArgumentException($"concurrency must be at least 1 (got {concurrency})");
        this.client = client;
        this.model = model;
        this.encoder = encoder;
        this.scorer = scorer;
        this.publisher = publisher;
        this.concurrency = concurrency;
    }

    public void BeginStep(long step)
    {
        gapSum = gapMax = rescoreSeconds = endpointSeconds = 0;
        gapCount = 0;
        publisher?.Publish(step);
    }

    public IReadOnlyList<GeneratedSequence> Sample(IReadOnlyList<VisionChatSample> prompts, IReadOnlyList<int> promptOf, GenerationOptions options)
    {
        options.Validate();
        var slots = Enumerable.Range(0, prompts.Count).Select(k => Enumerable.Range(0, promptOf.Count).Where(i => promptOf[i] == k).ToList()).ToList();
        var clock = Stopwatch.StartNew();
        var answers = ConcurrentRequests.Run(prompts.Count, concurrency, (k, cancel) => slots[k].Count == 0
            ? Task.FromResult<IReadOnlyList<ChatChoice>>(Array.Empty<ChatChoice>())
            : Request(prompts[k], slots[k].Count, options.Seed + k, options, cancel));
        endpointSeconds += clock.Elapsed.TotalSeconds;

        var ids = new IReadOnlyList<int>[promptOf.Count];
        var endpointLogProbs = new float[promptOf.Count][];
        var finish = new FinishReason[promptOf.Count];
        for (int k = 0; k < prompts.Count; k++)
            for (int j = 0; j < slots[k].Count; j++)
            {
                int i = slots[k][j];
                (ids[i], endpointLogProbs[i], finish[i]) = Completion(answers[k][j], options, k);
            }

        clock.Restart();
        var local = Rescore(prompts, promptOf, ids);
        rescoreSeconds += clock.Elapsed.TotalSeconds;
        var result = new GeneratedSequence[promptOf.Count];
        for (int i = 0; i < result.Length; i++)
        {
            for (int t = 0; t < endpointLogProbs[i].Length; t++)
            {
                double gap = Math.Abs(endpointLogProbs[i][t] - local[i][t]);
                gapSum += gap;
                gapMax = Math.Max(gapMax, gap);
                gapCount++;
            }
            var textIds = finish[i] == FinishReason.Stop ? ids[i].Take(ids[i].Count - 1).ToList() : ids[i];
            result[i] = new GeneratedSequence(ids[i], encoder.Tokenizer.Decode(textIds), local[i], finish[i]);
        }
        return result;
    }

    async Task<IReadOnlyList<ChatChoice>> Request(VisionChatSample prompt, int n, long seed, GenerationOptions options, CancellationToken cancel)
    {
        var request = new ChatRequest
        {
            Model = model, Messages = SampleMessages.Of(prompt, encoder.DefaultSystemPrompt), N = n,
            Temperature = options.Temperature, TopP = options.TopP, TopK = options.TopK, MaxTokens = options.MaxNewTokens, Seed = seed,
            LogProbs = true, ReturnTokensAsTokenIds = true, BannedTokenIds = options.SuppressTokenIds,
        };
        var completion = await client.ChatAsync(request, cancel).ConfigureAwait(false);
        if (completion.Choices.Count != n)
            throw new EndpointException(new Uri(client.ApiBase, "chat/completions"), 200, $"{completion.Choices.Count} choices for n = {n}");
        return completion.Choices;
    }

    /// <summary>A choice as the trainer's completion: token ids (+ the stop token when it stopped), the endpoint's log-probs, why it ended.</summary>
    (IReadOnlyList<int> Ids, float[] LogProbs, FinishReason Finish) Completion(ChatChoice choice, GenerationOptions options, int prompt)
    {
        var url = new Uri(client.ApiBase, "chat/completions");
        if (choice.LogProbs is null)
            throw new EndpointException(url, 200, $"prompt {prompt}, choice {choice.Index}: no logprobs.content in the answer (the rollouts need the sampled token ids)");
        var ids = new List<int>(choice.LogProbs.Count + 1);
        foreach (var entry in choice.LogProbs)
            ids.Add(entry.TokenId ?? throw new EndpointException(url, 200,
                $"prompt {prompt}, choice {choice.Index}: log-prob token '{entry.Token}' has no token id (the server must honour vLLM's return_tokens_as_token_ids or give each entry a token_id)"));
        var logProbs = choice.LogProbs.Select(e => e.LogProb).ToArray();
        var stops = options.StopTokenIds;
        switch (choice.FinishReason)
        {
            case "stop":
                // A server that keeps the stop token already has it last; otherwise append the one it stopped on
                // (vLLM's stop_reason for stop_token_ids), or <|im_end|>, the end of the assistant turn.
                if (ids.Count == 0 || !stops.Contains(ids[^1]))
                {
                    if (stops.Count == 0) throw new EndpointException(url, 200, "finish_reason 'stop' but no stop token is known");
                    ids.Add(choice.StopTokenId is { } s && stops.Contains(s) ? s : stops[0]);
                }
                return (ids, logProbs, FinishReason.Stop);
            case "length":
                return (ids, logProbs, FinishReason.Length);
            default:
                throw new EndpointException(url, 200, $"prompt {prompt}, choice {choice.Index}: finish_reason '{choice.FinishReason}' (expected 'stop' or 'length')");
        }
    }

    /// <summary>Log-probabilities of the completions under the trainer's model and current adapter (no gradients).</summary>
    List<float[]> Rescore(IReadOnlyList<VisionChatSample> prompts, IReadOnlyList<int> promptOf, IReadOnlyList<IReadOnlyList<int>> completions)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var batch = encoder.Prompts(prompts);
        try
        {
            var (lp, _) = scorer.SharedPromptLogProbs(batch, promptOf, completions);
            float[] flat = lp.to_type(ScalarType.Float32).cpu().contiguous().data<float>().ToArray();
            long width = lp.shape[1];
            // Right-aligned rows: completion i's values are its last |completion i| columns.
            return completions.Select((c, i) => flat.Skip((int)(i * width + width - c.Count)).Take(c.Count).ToArray()).ToList();
        }
        finally { batch.PixelValues?.Dispose(); batch.ImageGridThw?.Dispose(); }
    }

    public IReadOnlyDictionary<string, double> StepMetrics() => new Dictionary<string, double>
    {
        ["rollout_logprob_gap"] = gapCount == 0 ? 0 : gapSum / gapCount,
        ["rollout_logprob_gap_max"] = gapMax,
        ["rollout_endpoint_s"] = endpointSeconds,
        ["rollout_rescore_s"] = rescoreSeconds,
    };
}
