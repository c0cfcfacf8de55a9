using System.Globalization;
using System.Text.Json.Nodes;

namespace MMedExpert.Serving.Client;

/// <summary>A part of a chat message's content: text, or an image by URL (a data URL for local files).</summary>
public abstract record ChatContentPart;
public sealed record TextContentPart(string Text) : ChatContentPart;
public sealed record ImageUrlContentPart(string Url) : ChatContentPart;

/// <summary>One message of an OpenAI chat request: role (system, user, assistant) and its content parts.</summary>
public sealed record ChatRequestMessage(string Role, IReadOnlyList<ChatContentPart> Content);

/// <summary>
/// The body of <c>POST /v1/chat/completions</c>: OpenAI's fields, plus vLLM's <c>return_tokens_as_token_ids</c> so
/// log-probability entries name token ids ("token_id:&lt;id&gt;") instead of token strings that cannot be mapped back.
/// </summary>
public sealed record ChatRequest
{
    public required string Model { get; init; }
    public required IReadOnlyList<ChatRequestMessage> Messages { get; init; }
    /// <summary>Completions sampled for this prompt.</summary>
    public int N { get; init; } = 1;
    /// <summary>0 = greedy.</summary>
    public double Temperature { get; init; }
    public double TopP { get; init; } = 1.0;
    /// <summary>0 = off (sent only when set: an extension that vLLM and SGLang accept, OpenAI does not).</summary>
    public int TopK { get; init; }
    public int MaxTokens { get; init; } = 256;
    public long? Seed { get; init; }
    /// <summary>Ask for the chosen tokens' log-probabilities (and, with it, their ids).</summary>
    public bool LogProbs { get; init; }
    /// <summary>vLLM's extension: log-probability entries as "token_id:&lt;id&gt;".</summary>
    public bool ReturnTokensAsTokenIds { get; init; }
    /// <summary>Tokens that must never be sampled, sent as <c>logit_bias</c> −100 (OpenAI's "ban" value).</summary>
    public IReadOnlyList<int> BannedTokenIds { get; init; } = Array.Empty<int>();

    public JsonObject ToJson()
    {
        var messages = new JsonArray();
        foreach (var m in Messages)
        {
            var parts = new JsonArray();
            foreach (var p in m.Content)
                parts.Add(p switch
                {
                    TextContentPart t => new JsonObject { ["type"] = "text", ["text"] = t.Text },
                    ImageUrlContentPart i => new JsonObject { ["type"] = "image_url", ["image_url"] = new JsonObject { ["url"] = i.Url } },
                    _ => throw new ArgumentException($"unsupported content part {p.GetType().Name}"),
                });
            messages.Add(new JsonObject { ["role"] = m.Role, ["content"] = parts });
        }
        var body = new JsonObject
        {
            ["model"] = Model, ["messages"] = messages, ["n"] = N, ["temperature"] = Temperature, ["top_p"] = TopP,
            ["max_tokens"] = MaxTokens,
        };
        if (TopK > 0) body["top_k"] = TopK;
        if (Seed is { } seed) body["seed"] = seed;
        if (LogProbs) body["logprobs"] = true;
        if (ReturnTokensAsTokenIds) body["return_tokens_as_token_ids"] = true;
        if (BannedTokenIds.Count > 0)
        {
            var bias = new JsonObject();
            foreach (int id in BannedTokenIds.Distinct()) bias[id.ToString(CultureInfo.InvariantCulture)] = -100;
            body["logit_bias"] = bias;
        }
        return body;
    }
}
