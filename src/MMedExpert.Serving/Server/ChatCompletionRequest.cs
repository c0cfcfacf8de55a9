using System.Text.Json;
using System.Text.Json.Nodes;

namespace MMedExpert.Serving.Server;

/// <summary>One piece of a request message's content: text, or an image by URL (data URL, file:// URL or local path).</summary>
public abstract record RequestPart;
public sealed record RequestText(string Text) : RequestPart;
public sealed record RequestImage(string Url, string Param) : RequestPart;

public sealed record RequestMessage(string Role, IReadOnlyList<RequestPart> Content);

/// <summary>
/// The body of POST /v1/chat/completions as OpenAI defines it (plus vLLM's top_k, ignore_eos and return_tokens_as_token_ids), read
/// from JSON with each refusal naming its field: a missing or wrong-typed field is 400, a value out of range 422.
/// Limits that need the prompt (max_model_len) are checked once it is tokenized (<see cref="ChatPrompt"/>).
/// </summary>
public sealed record ChatCompletionRequest
{
    public required string Model { get; init; }
    public required IReadOnlyList<RequestMessage> Messages { get; init; }
    public bool Stream { get; init; }
    public bool IncludeUsage { get; init; }
    public int N { get; init; } = 1;
    /// <summary>OpenAI's default is 1 (sampling); 0 = greedy.</summary>
    public double Temperature { get; init; } = 1.0;
    public double TopP { get; init; } = 1.0;
    public int TopK { get; init; }
    /// <summary>null = as many as max_model_len leaves after the prompt.</summary>
    public int? MaxTokens { get; init; }
    public long? Seed { get; init; }
    public IReadOnlyList<string> Stop { get; init; } = Array.Empty<string>();
    public bool Logprobs { get; init; }
    public int TopLogprobs { get; init; }
    public bool ReturnTokensAsTokenIds { get; init; }
    /// <summary>vLLM's ignore_eos: generate exactly max_tokens, past the stop tokens (serving benchmarks use it).</summary>
    public bool IgnoreEos { get; init; }

    public const int MaxTopLogprobs = 20;

    public static ChatCompletionRequest Parse(JsonNode? body, int maxBatch)
    {
        if (body is not JsonObject o) throw ApiError.BadRequest("the request body must be a JSON object");
        var model = RequiredString(o, "model");
        var messages = ParseMessages(o["messages"]);
        int n = OptionalInt(o, "n") ?? 1;
        if (n < 1 || n > maxBatch) throw ApiError.Unprocessable($"n must be in [1, {maxBatch}] (the server's max batch), got {n}", "n");
        double temperature = OptionalDouble(o, "temperature") ?? 1.0;
        if (temperature < 0 || double.IsNaN(temperature)) throw ApiError.Unprocessable($"temperature must be ≥ 0, got {temperature}", "temperature");
        double topP = OptionalDouble(o, "top_p") ?? 1.0;
        if (!(topP > 0 && topP <= 1)) throw ApiError.Unprocessable($"top_p must be in (0, 1], got {topP}", "top_p");
        int topK = OptionalInt(o, "top_k") ?? 0;
        if (topK < -1) throw ApiError.Unprocessable($"top_k must be -1 (off), 0 (off) or positive, got {topK}", "top_k");
        int? maxTokens = OptionalInt(o, "max_completion_tokens") ?? OptionalInt(o, "max_tokens");
        string maxParam = o["max_completion_tokens"] is not null ? "max_completion_tokens" : "max_tokens";
        if (maxTokens is < 1) throw ApiError.Unprocessable($"{maxParam} must be ≥ 1, got {maxTokens}", maxParam);
        bool logprobs = OptionalBool(o, "logprobs") ?? false;
        int topLogprobs = OptionalInt(o, "top_logprobs") ?? 0;
        if (topLogprobs < 0 || topLogprobs > MaxTopLogprobs)
            throw ApiError.Unprocessable($"top_logprobs must be in [0, {MaxTopLogprobs}], got {topLogprobs}", "top_logprobs");
        if (topLogprobs > 0 && !logprobs) throw ApiError.BadRequest("top_logprobs needs logprobs set to true", "top_logprobs");
        bool includeUsage = false;
        if (o["stream_options"] is { } so && so.GetValueKind() != JsonValueKind.Null)
        {
            if (so is not JsonObject soo) throw ApiError.BadRequest("stream_options must be an object", "stream_options");
            includeUsage = OptionalBool(soo, "include_usage", "stream_options.include_usage") ?? false;
        }
        return new ChatCompletionRequest
        {
            Model = model,
            Messages = messages,
            Stream = OptionalBool(o, "stream") ?? false,
            IncludeUsage = includeUsage,
            N = n,
            Temperature = temperature,
            TopP = topP,
            TopK = Math.Max(0, topK),
            MaxTokens = maxTokens,
            Seed = OptionalLong(o, "seed"),
            Stop = ParseStop(o["stop"]),
            Logprobs = logprobs,
            TopLogprobs = topLogprobs,
            ReturnTokensAsTokenIds = OptionalBool(o, "return_tokens_as_token_ids") ?? false,
            IgnoreEos = OptionalBool(o, "ignore_eos") ?? false,
        };
    }

    static IReadOnlyList<RequestMessage> ParseMessages(JsonNode? node)
    {
        if (node is null) throw ApiError.BadRequest("messages is required", "messages");
        if (node is not JsonArray array) throw ApiError.BadRequest("messages must be an array", "messages");
        if (array.Count == 0) throw ApiError.BadRequest("messages must not be empty", "messages");
        var messages = new List<RequestMessage>();
        for (int m = 0; m < array.Count; m++)
        {
            string at = $"messages[{m}]";
            if (array[m] is not JsonObject mo) throw ApiError.BadRequest($"{at} must be an object", at);
            string role = RequiredString(mo, "role", $"{at}.role");
            if (role is not ("system" or "user" or "assistant"))
                throw ApiError.BadRequest($"{at}.role must be system, user or assistant, got '{role}'", $"{at}.role");
            messages.Add(new RequestMessage(role, ParseContent(mo["content"], $"{at}.content", role)));
        }
        return messages;
    }

    static IReadOnlyList<RequestPart> ParseContent(JsonNode? node, string at, string role)
    {
        if (node is null || node.GetValueKind() == JsonValueKind.Null)
        {
            if (role == "assistant") return Array.Empty<RequestPart>();
            throw ApiError.BadRequest($"{at} is required", at);
        }
        if (node.GetValueKind() == JsonValueKind.String) return new[] { new RequestText(node.GetValue<string>()) };
        if (node is not JsonArray parts) throw ApiError.BadRequest($"{at} must be a string or an array of parts", at);
        var list = new List<RequestPart>();
        for (int p = 0; p < parts.Count; p++)
        {
            string pat = $"{at}[{p}]";
            if (parts[p] is not JsonObject po) throw ApiError.BadRequest($"{pat} must be an object", pat);
            string type = RequiredString(po, "type", $"{pat}.type");
            switch (type)
            {
                case "text":
                    list.Add(new RequestText(RequiredString(po, "text", $"{pat}.text")));
                    break;
                case "image_url":
                    if (role != "user") throw ApiError.BadRequest($"{pat}: images are accepted in user messages only", pat);
                    var iu = po["image_url"];
                    string url = iu switch
                    {
                        JsonObject iuo => RequiredString(iuo, "url", $"{pat}.image_url.url"),
                        JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
                        null => throw ApiError.BadRequest($"{pat}.image_url is required", $"{pat}.image_url"),
                        _ => throw ApiError.BadRequest($"{pat}.image_url must be an object with a url", $"{pat}.image_url"),
                    };
                    list.Add(new RequestImage(url, $"{pat}.image_url.url"));
                    break;
                default:
                    throw ApiError.BadRequest($"{pat}.type '{type}' is not supported (text, image_url)", $"{pat}.type");
            }
        }
        return list;
    }

    static IReadOnlyList<string> ParseStop(JsonNode? node)
    {
        if (node is null || node.GetValueKind() == JsonValueKind.Null) return Array.Empty<string>();
        if (node.GetValueKind() == JsonValueKind.String) return Nonempty(new[] { node.GetValue<string>() });
        if (node is JsonArray a && a.All(x => x?.GetValueKind() == JsonValueKind.String))
            return Nonempty(a.Select(x => x!.GetValue<string>()).ToArray());
        throw ApiError.BadRequest("stop must be a string or an array of strings", "stop");

        static IReadOnlyList<string> Nonempty(string[] stops) => stops.Where(s => s.Length > 0).ToArray();
    }

    static string RequiredString(JsonObject o, string key, string? param = null)
    {
        param ??= key;
        var node = o[key];
        if (node is null || node.GetValueKind() == JsonValueKind.Null) throw ApiError.BadRequest($"{param} is required", param);
        if (node.GetValueKind() != JsonValueKind.String) throw ApiError.BadRequest($"{param} must be a string", param);
        return node.GetValue<string>();
    }

    static bool? OptionalBool(JsonObject o, string key, string? param = null)
    {
        var node = o[key];
        if (node is null || node.GetValueKind() == JsonValueKind.Null) return null;
        return node.GetValueKind() switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw ApiError.BadRequest($"{param ?? key} must be a boolean", param ?? key),
        };
    }

    static double? OptionalDouble(JsonObject o, string key)
    {
        var node = o[key];
        if (node is null || node.GetValueKind() == JsonValueKind.Null) return null;
        if (node.GetValueKind() != JsonValueKind.Number) throw ApiError.BadRequest($"{key} must be a number", key);
        return node.GetValue<double>();
    }

    static long? OptionalLong(JsonObject o, string key)
    {
        var node = o[key];
        if (node is null || node.GetValueKind() == JsonValueKind.Null) return null;
        if (node.GetValueKind() != JsonValueKind.Number || !((JsonValue)node).TryGetValue<long>(out var value))
            throw ApiError.BadRequest($"{key} must be an integer", key);
        return value;
    }

    static int? OptionalInt(JsonObject o, string key)
    {
        var value = OptionalLong(o, key);
        if (value is null) return null;
        if (value < int.MinValue || value > int.MaxValue) throw ApiError.Unprocessable($"{key} is out of range ({value})", key);
        return (int)value;
    }
}
