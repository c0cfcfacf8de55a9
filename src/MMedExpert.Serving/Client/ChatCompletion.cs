using System.Globalization;
using System.Text.Json;

namespace MMedExpert.Serving.Client;

/// <summary>
/// A chosen token's log-probability entry: the token as the server wrote it, its log-probability, and the token id when
/// the entry carries one as a field of its own (<c>"token_id": 42</c>, as SGLang adds).
/// </summary>
public sealed record TokenLogProb(string Token, float LogProb, int? TokenIdField = null)
{
    public const string TokenIdPrefix = "token_id:";

    /// <summary>
    /// The token's id: the entry's own <c>token_id</c> field, else the id of a "token_id:&lt;id&gt;" token (vLLM's
    /// <c>return_tokens_as_token_ids</c>); null for a plain token string, whose id cannot be known for sure.
    /// </summary>
    public int? TokenId =>
        TokenIdField ?? (Token.StartsWith(TokenIdPrefix, StringComparison.Ordinal)
        && int.TryParse(Token.AsSpan(TokenIdPrefix.Length), NumberStyles.None, CultureInfo.InvariantCulture, out int id) ? id : null);
}

/// <summary>
/// One choice of a chat completion: the text, why it ended ("stop": a stop token or string; "length": max_tokens), the
/// chosen tokens' log-probabilities when asked for, and vLLM's <c>stop_reason</c> (the stop token id or string; null for
/// the model's end-of-sequence token).
/// </summary>
public sealed record ChatChoice(int Index, string Content, string? FinishReason, IReadOnlyList<TokenLogProb>? LogProbs, int? StopTokenId);

/// <summary>The answer of <c>POST /v1/chat/completions</c>, choices in index order.</summary>
public sealed record ChatCompletion(string Model, IReadOnlyList<ChatChoice> Choices)
{
    /// <summary>Reads a response body; a malformed one is a <see cref="FormatException"/> naming the field.</summary>
    public static ChatCompletion Parse(string json)
    {
        using var doc = JsonDocument.Parse(json);
        var root = doc.RootElement;
        if (root.ValueKind != JsonValueKind.Object) throw new FormatException("the response is not a JSON object");
        string model = root.TryGetProperty("model", out var m) && m.ValueKind == JsonValueKind.String ? m.GetString()! : "";
        if (!root.TryGetProperty("choices", out var choices) || choices.ValueKind != JsonValueKind.Array)
            throw new FormatException("the response has no 'choices' array");
        var list = new List<ChatChoice>();
        int position = 0;
        foreach (var c in choices.EnumerateArray())
        {
            int index = c.TryGetProperty("index", out var i) && i.ValueKind == JsonValueKind.Number ? i.GetInt32() : position;
            if (!c.TryGetProperty("message", out var message) || message.ValueKind != JsonValueKind.Object)
                throw new FormatException($"choices[{position}] has no 'message'");
            string content = message.TryGetProperty("content", out var ct) && ct.ValueKind == JsonValueKind.String ? ct.GetString()! : "";
            string? finish = c.TryGetProperty("finish_reason", out var f) && f.ValueKind == JsonValueKind.String ? f.GetString() : null;
            int? stopToken = c.TryGetProperty("stop_reason", out var sr) && sr.ValueKind == JsonValueKind.Number ? sr.GetInt32() : null;
            list.Add(new ChatChoice(index, content, finish, LogProbsOf(c, position), stopToken));
            position++;
        }
        return new ChatCompletion(model, list.OrderBy(c => c.Index).ToList());
    }

    static IReadOnlyList<TokenLogProb>? LogProbsOf(JsonElement choice, int position)
    {
        if (!choice.TryGetProperty("logprobs", out var lp) || lp.ValueKind != JsonValueKind.Object) return null;
        if (!lp.TryGetProperty("content", out var content) || content.ValueKind != JsonValueKind.Array) return null;
        var result = new List<TokenLogProb>();
        int k = 0;
        foreach (var e in content.EnumerateArray())
        {
            if (!e.TryGetProperty("token", out var t) || t.ValueKind != JsonValueKind.String)
                throw new FormatException($"choices[{position}].logprobs.content[{k}] has no 'token'");
            // A token with probability 0 under the reported distribution comes back as −9999 (vLLM) or null.
            float value = e.TryGetProperty("logprob", out var v) && v.ValueKind == JsonValueKind.Number ? v.GetSingle() : float.NegativeInfinity;
            int? tokenId = e.TryGetProperty("token_id", out var ti) && ti.ValueKind == JsonValueKind.Number ? ti.GetInt32() : null;
            result.Add(new TokenLogProb(t.GetString()!, value, tokenId));
            k++;
        }
        return result;
    }
}
