using MMedExpert.Core.Training;
using MMedExpert.Data.Benchmarks;
using MMedExpert.Data.Eval;

namespace MMedExpert.Serving.Client;

/// <summary>
/// The evaluation harness's answer generator backed by an endpoint: the same prompts as <see cref="ModelAnswers.Greedy"/>
/// (<see cref="EvalPrompt.UserText"/>, the images, the encoder's system prompt), greedy (temperature 0) with the same
/// length limit; a batch's requests are sent concurrently.
/// </summary>
public static class EndpointAnswers
{
    /// <param name="bannedTokenIds">tokens the answer must not contain (the vision placeholders the local path suppresses), sent as logit_bias</param>
    public static Func<IReadOnlyList<EvalItem>, IReadOnlyList<string>> Greedy(OpenAiClient client, string model, string? systemPrompt,
        IReadOnlyList<int> bannedTokenIds, int maxNewTokens, int concurrency) =>
        batch => ConcurrentRequests.Run(batch.Count, concurrency, async (i, cancel) =>
        {
            var item = batch[i];
            var request = new ChatRequest
            {
                Model = model,
                Messages = SampleMessages.Of(new VisionChatSample(item.ImagePaths, EvalPrompt.UserText(item)), systemPrompt),
                Temperature = 0, MaxTokens = maxNewTokens, BannedTokenIds = bannedTokenIds,
            };
            var completion = await client.ChatAsync(request, cancel).ConfigureAwait(false);
            if (completion.Choices.Count != 1)
                throw new EndpointException(new Uri(client.ApiBase, "chat/completions"), 200,
                    $"{completion.Choices.Count} choices for item '{item.Id}' (asked for 1)");
            return completion.Choices[0].Content;
        });
}
