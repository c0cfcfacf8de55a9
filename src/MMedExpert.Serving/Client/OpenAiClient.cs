using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace MMedExpert.Serving.Client;

/// <summary>A model an endpoint serves (<c>GET /v1/models</c>): its name, and for a LoRA adapter the base it belongs to.</summary>
public sealed record ServedModel(string Id, string? Parent, string? Root);

/// <summary>
/// A client of an OpenAI-compatible endpoint (<c>mmx serve</c>, vLLM, SGLang) over HttpClient: chat completions, the
/// model list, and the runtime LoRA routes (vLLM's <c>/v1/load_lora_adapter</c>, <c>/v1/unload_lora_adapter</c>; SGLang
/// serves the same routes at the root, which the client falls back to when the <c>/v1</c> route does not exist). Every
/// failure is an <see cref="EndpointException"/> naming the URL, the status and the server's message. Connection errors,
/// timeouts and 5xx answers are retried a bounded number of times; 4xx answers never are. Thread-safe: requests may run
/// concurrently.
/// </summary>
public sealed class OpenAiClient : IDisposable
{
    readonly HttpClient http;
    readonly EndpointOptions options;

    /// <param name="endpoint">the server's address: <c>http://host:port</c>, with or without the <c>/v1</c> suffix</param>
    public OpenAiClient(string endpoint, EndpointOptions? options = null, HttpMessageHandler? handler = null)
    {
        this.options = options ?? new EndpointOptions();
        ApiBase = ApiBaseOf(endpoint);
        http = handler is null ? new HttpClient() : new HttpClient(handler);
        // Each request gets its own deadline (options.Timeout), linked with the caller's cancellation.
        http.Timeout = Timeout.InfiniteTimeSpan;
        if (this.options.ApiKey is { Length: > 0 } key) http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
    }

    /// <summary>The API root, ending in <c>/v1/</c>.</summary>
    public Uri ApiBase { get; }

    /// <summary>The API root of an endpoint address; an address that is not an absolute http(s) URL is an input error.</summary>
    public static Uri ApiBaseOf(string endpoint)
    {
        if (!Uri.TryCreate(endpoint.Trim(), UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
            throw new EndpointException(new Uri("http://invalid/"), null, $"'{endpoint}' is not an http(s) URL (e.g. http://127.0.0.1:8000)");
        string path = uri.AbsolutePath.TrimEnd('/');
        if (!path.EndsWith("/v1", StringComparison.Ordinal)) path += "/v1";
        return new UriBuilder(uri) { Path = path + "/", Query = "", Fragment = "" }.Uri;
    }

    public async Task<ChatCompletion> ChatAsync(ChatRequest request, CancellationToken cancel = default)
    {
        var url = new Uri(ApiBase, "chat/completions");
        string body = await SendAsync(url, HttpMethod.Post, request.ToJson(), cancel).ConfigureAwait(false);
        try { return ChatCompletion.Parse(body); }
        catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException)
        {
            throw new EndpointException(url, 200, $"not a chat completion: {e.Message}", e);
        }
    }

    public async Task<IReadOnlyList<ServedModel>> ModelsAsync(CancellationToken cancel = default)
    {
        var url = new Uri(ApiBase, "models");
        string body = await SendAsync(url, HttpMethod.Get, null, cancel).ConfigureAwait(false);
        try
        {
            using var doc = JsonDocument.Parse(body);
            return doc.RootElement.GetProperty("data").EnumerateArray()
                .Select(m => new ServedModel(m.GetProperty("id").GetString()!, StringOrNull(m, "parent"), StringOrNull(m, "root")))
                .ToList();
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            throw new EndpointException(url, 200, $"not a model list (needs data[].id): {e.Message}", e);
        }
    }

    /// <summary>Runtime LoRA loading (vLLM: server started with <c>VLLM_ALLOW_RUNTIME_LORA_UPDATING=True</c>): the path is read by the server.</summary>
    public Task LoadLoraAdapterAsync(string name, string path, CancellationToken cancel = default) =>
        LoraRouteAsync("load_lora_adapter", new JsonObject { ["lora_name"] = name, ["lora_path"] = path }, cancel);

    public Task UnloadLoraAdapterAsync(string name, CancellationToken cancel = default) =>
        LoraRouteAsync("unload_lora_adapter", new JsonObject { ["lora_name"] = name }, cancel);

    /// <summary>Where the LoRA routes live: null until a call tells; then <see cref="ApiBase"/> or the server root.</summary>
    Uri? loraBase;

    /// <summary>
    /// A LoRA route under <c>/v1</c> (vLLM, mmx serve), or at the server root (SGLang) when the <c>/v1</c> one is missing.
    /// "Missing" is a 404 whose message is the framework's bare "Not Found": a 404 about the adapter itself (unknown name)
    /// carries the server's own message and is passed on.
    /// </summary>
    async Task LoraRouteAsync(string route, JsonObject body, CancellationToken cancel)
    {
        if (loraBase is { } known)
        {
            await SendAsync(new Uri(known, route), HttpMethod.Post, body, cancel).ConfigureAwait(false);
            return;
        }
        try
        {
            await SendAsync(new Uri(ApiBase, route), HttpMethod.Post, body, cancel).ConfigureAwait(false);
            loraBase = ApiBase;
        }
        catch (EndpointException e) when (e.Status == 404 && IsMissingRoute(e.Reason))
        {
            var root = new Uri(ApiBase, "../");
            await SendAsync(new Uri(root, route), HttpMethod.Post, body, cancel).ConfigureAwait(false);
            loraBase = root;
        }
    }

    static bool IsMissingRoute(string reason) =>
        reason.Trim() is "Not Found" or "NotFound" or "404 page not found";

    static string? StringOrNull(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    /// <summary>One request with bounded retries; returns the body of a 2xx answer.</summary>
    async Task<string> SendAsync(Uri url, HttpMethod method, JsonNode? body, CancellationToken cancel)
    {
        string? json = body?.ToJsonString();
        var delay = options.RetryDelay;
        for (int attempt = 0; ; attempt++)
        {
            bool last = attempt >= options.Retries;
            try { return await SendOnceAsync(url, method, json, cancel).ConfigureAwait(false); }
            catch (EndpointException e) when (!last && !e.IsClientError)
            {
                await Task.Delay(delay, cancel).ConfigureAwait(false);
                delay *= 2;
            }
            catch (EndpointException e) when (last && attempt > 0 && !e.IsClientError)
            {
                throw new EndpointException(e.Url, e.Status, $"{e.Reason} (after {attempt + 1} tries)", e);
            }
        }
    }

    async Task<string> SendOnceAsync(Uri url, HttpMethod method, string? json, CancellationToken cancel)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        deadline.CancelAfter(options.Timeout);
        using var message = new HttpRequestMessage(method, url);
        if (json is not null) message.Content = new StringContent(json, Encoding.UTF8, "application/json");
        HttpResponseMessage response;
        string text;
        try
        {
            response = await http.SendAsync(message, HttpCompletionOption.ResponseContentRead, deadline.Token).ConfigureAwait(false);
            text = await response.Content.ReadAsStringAsync(deadline.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException e) when (!cancel.IsCancellationRequested)
        {
            throw new EndpointException(url, null, $"no answer within {options.Timeout.TotalSeconds:0.#} s", e);
        }
        catch (HttpRequestException e)
        {
            throw new EndpointException(url, null, $"cannot connect ({Innermost(e)}); is the server running and listening there?", e);
        }
        using (response)
        {
            if (response.IsSuccessStatusCode) return text;
            throw new EndpointException(url, (int)response.StatusCode, ErrorMessage(text, response.StatusCode));
        }
    }

    static string Innermost(Exception e)
    {
        while (e.InnerException is not null) e = e.InnerException;
        return e.Message;
    }

    /// <summary>
    /// The server's message in an error body: OpenAI's <c>{"error":{"message"}}</c>, vLLM's older
    /// <c>{"object":"error","message"}</c>, FastAPI's <c>{"detail"}</c>; else the body itself (or the status name).
    /// </summary>
    public static string ErrorMessage(string body, HttpStatusCode status)
    {
        try
        {
            using var doc = JsonDocument.Parse(body);
            var root = doc.RootElement;
            if (root.ValueKind == JsonValueKind.Object)
            {
                if (root.TryGetProperty("error", out var error))
                {
                    if (error.ValueKind == JsonValueKind.Object && error.TryGetProperty("message", out var m) && m.ValueKind == JsonValueKind.String) return m.GetString()!;
                    if (error.ValueKind == JsonValueKind.String) return error.GetString()!;
                }
                if (root.TryGetProperty("message", out var message) && message.ValueKind == JsonValueKind.String) return message.GetString()!;
                if (root.TryGetProperty("detail", out var detail)) return detail.ValueKind == JsonValueKind.String ? detail.GetString()! : detail.GetRawText();
            }
        }
        catch (JsonException) { }
        string trimmed = body.Trim();
        if (trimmed.Length == 0) return status.ToString();
        return trimmed.Length <= 500 ? trimmed : trimmed[..500] + "…";
    }

    public void Dispose() => http.Dispose();
}
