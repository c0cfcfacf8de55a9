using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using MMedExpert.Core;

namespace MMedExpert.Serving.Server;

/// <summary>
/// The HTTP surface, in OpenAI's and vLLM's JSON shapes (snake_case): GET /v1/models, POST /v1/chat/completions (plain
/// or streamed), POST /v1/load_lora_adapter and /v1/unload_lora_adapter, GET /health. Every refusal is OpenAI's error
/// object (<see cref="ApiError"/>); nothing a request sends can stop the server or reach another request.
/// </summary>
public sealed class OpenAiEndpoints(ServeOptions options, ServedModel served, BatchEngine engine, AdapterRegistry adapters)
{
    readonly long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
    readonly TokenText tokenText = new(served.Tokenizer);
    readonly string baseName = options.BaseModelName;

    public void Map(IEndpointRouteBuilder app)
    {
        app.MapGet("/health", (RequestDelegate)(ctx => Guard(ctx, () => { ctx.Response.StatusCode = 200; return Task.CompletedTask; })));
        app.MapGet("/v1/models", (RequestDelegate)(ctx => Guard(ctx, () => WriteJson(ctx, 200, Models()))));
        app.MapPost("/v1/chat/completions", (RequestDelegate)(ctx => Guard(ctx, () => ChatCompletions(ctx))));
        app.MapPost("/v1/load_lora_adapter", (RequestDelegate)(ctx => Guard(ctx, () => LoadAdapter(ctx))));
        app.MapPost("/v1/unload_lora_adapter", (RequestDelegate)(ctx => Guard(ctx, () => UnloadAdapter(ctx))));
    }

    JsonObject Models()
    {
        var data = new JsonArray
        {
            new JsonObject
            {
                ["id"] = baseName, ["object"] = "model", ["created"] = created, ["owned_by"] = "mmx",
                ["root"] = Path.GetFullPath(options.ModelDir), ["parent"] = null, ["max_model_len"] = options.MaxModelLen,
            },
        };
        foreach (var (name, path, when) in adapters.List())
            data.Add(new JsonObject
            {
                ["id"] = name, ["object"] = "model", ["created"] = when, ["owned_by"] = "mmx",
                ["root"] = path, ["parent"] = baseName, ["max_model_len"] = options.MaxModelLen,
            });
        return new JsonObject { ["object"] = "list", ["data"] = data };
    }

    async Task ChatCompletions(HttpContext ctx)
    {
        var request = ChatCompletionRequest.Parse(await ReadJson(ctx), engine.MaxBatch);
        string? adapter = null;
        if (request.Model != baseName)
        {
            if (!adapters.TryGet(request.Model, out var internalName)) throw ApiError.ModelNotFound(request.Model);
            adapter = internalName;
        }
        GenerationJob job;
        using (var prompt = ChatPrompt.Build(request.Messages, served, options.LocalMediaRoot))
        {
            int length = prompt.Ids.Length, limit = options.MaxModelLen;
            if (length >= limit)
                throw ApiError.Unprocessable($"This model's maximum context length is {limit} tokens. However, your messages resulted in {length} tokens.", "messages");
            int maxTokens = request.MaxTokens ?? limit - length;
            if (length + maxTokens > limit)
                throw ApiError.Unprocessable($"This model's maximum context length is {limit} tokens. However, you requested {length + maxTokens} tokens ({length} in the messages, {maxTokens} in the completion).", "max_tokens");
            var (pixels, grid) = prompt.TakeImages();
            job = new GenerationJob
            {
                ModelName = request.Model, Adapter = adapter, PromptIds = prompt.Ids, PixelValues = pixels, GridThw = grid,
                N = request.N, MaxTokens = maxTokens, Temperature = request.Temperature, TopP = request.TopP, TopK = request.TopK,
                Seed = request.Seed ?? Random.Shared.NextInt64(), TopLogprobs = request.Logprobs ? request.TopLogprobs : 0,
                IgnoreEos = request.IgnoreEos,
            };
        }
        try { engine.Submit(job); }
        catch { job.DisposeImages(); throw; }
        using var cancelOnDisconnect = ctx.RequestAborted.Register(job.Cancel);
        var choices = Enumerable.Range(0, request.N)
            .Select(i => new ChoiceText(i, served.Tokenizer, tokenText, request.Stop, request.Logprobs, request.ReturnTokensAsTokenIds)).ToArray();
        string id = "chatcmpl-" + Guid.NewGuid().ToString("N");
        long now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        try
        {
            if (request.Stream) await Stream(ctx, request, job, choices, id, now);
            else await Complete(ctx, request, job, choices, id, now);
        }
        finally { job.Cancel(); }   // a no-op once finished; frees the slots when the client went away
    }

    async Task Complete(HttpContext ctx, ChatCompletionRequest request, GenerationJob job, ChoiceText[] choices, string id, long now)
    {
        await foreach (var e in job.Events.Reader.ReadAllAsync(ctx.RequestAborted))
            switch (e)
            {
                case TokenEvent t:
                    choices[t.Choice].Add(t, out bool stopped);
                    if (stopped) job.RequestStop(t.Choice);
                    break;
                case FinishEvent f: choices[f.Choice].End(f.Reason); break;
                case FailEvent fail: throw fail.Error;
            }
        var list = new JsonArray();
        foreach (var c in choices)
            list.Add(new JsonObject
            {
                ["index"] = c.Index,
                ["message"] = new JsonObject { ["role"] = "assistant", ["content"] = c.Text },
                ["logprobs"] = request.Logprobs ? new JsonObject { ["content"] = c.LogprobsContent.DeepClone() } : null,
                ["finish_reason"] = ChoiceText.FinishName(c.Finish),
            });
        await WriteJson(ctx, 200, new JsonObject
        {
            ["id"] = id, ["object"] = "chat.completion", ["created"] = now, ["model"] = request.Model,
            ["choices"] = list, ["usage"] = Usage(job, choices),
        });
    }

    async Task Stream(HttpContext ctx, ChatCompletionRequest request, GenerationJob job, ChoiceText[] choices, string id, long now)
    {
        var sse = new SseWriter(ctx.Response);
        var cancel = ctx.RequestAborted;
        var reported = new bool[choices.Length];
        JsonObject Chunk(JsonObject choice)
        {
            var chunk = new JsonObject
            {
                ["id"] = id, ["object"] = "chat.completion.chunk", ["created"] = now, ["model"] = request.Model,
                ["choices"] = new JsonArray(choice),
            };
            if (request.IncludeUsage) chunk["usage"] = null;
            return chunk;
        }
        JsonObject Choice(int index, JsonObject delta, JsonObject? logprobs, string? finish) => new()
        {
            ["index"] = index, ["delta"] = delta, ["logprobs"] = logprobs, ["finish_reason"] = finish,
        };

        foreach (var c in choices)
            await sse.WriteAsync(Chunk(Choice(c.Index, new JsonObject { ["role"] = "assistant", ["content"] = "" }, null, null)), cancel);
        try
        {
            await foreach (var e in job.Events.Reader.ReadAllAsync(cancel))
                switch (e)
                {
                    case TokenEvent t when !reported[t.Choice]:
                    {
                        var c = choices[t.Choice];
                        var entry = c.Add(t, out bool stopped);
                        if (stopped) job.RequestStop(t.Choice);
                        string delta = c.TakeDelta();
                        var logprobs = entry is null ? null : new JsonObject { ["content"] = new JsonArray(entry) };
                        string? finish = stopped ? ChoiceText.FinishName(c.Finish) : null;
                        if (delta.Length > 0 || logprobs is not null || finish is not null)
                            await sse.WriteAsync(Chunk(Choice(c.Index, delta.Length > 0 ? new JsonObject { ["content"] = delta } : new JsonObject(), logprobs, finish)), cancel);
                        reported[t.Choice] = stopped;
                        break;
                    }
                    case FinishEvent f when !reported[f.Choice]:
                    {
                        var c = choices[f.Choice];
                        c.End(f.Reason);
                        string delta = c.TakeDelta();
                        await sse.WriteAsync(Chunk(Choice(c.Index, delta.Length > 0 ? new JsonObject { ["content"] = delta } : new JsonObject(), null, ChoiceText.FinishName(c.Finish))), cancel);
                        reported[f.Choice] = true;
                        break;
                    }
                    case FailEvent fail: throw fail.Error;
                }
        }
        catch (ApiError error)
        {
            // The status line is sent already: the error goes in the stream, as vLLM does.
            await sse.WriteAsync(error.ToJson(), cancel);
            await sse.DoneAsync(cancel);
            return;
        }
        if (request.IncludeUsage)
            await sse.WriteAsync(new JsonObject
            {
                ["id"] = id, ["object"] = "chat.completion.chunk", ["created"] = now, ["model"] = request.Model,
                ["choices"] = new JsonArray(), ["usage"] = Usage(job, choices),
            }, cancel);
        await sse.DoneAsync(cancel);
    }

    static JsonObject Usage(GenerationJob job, ChoiceText[] choices)
    {
        int completion = choices.Sum(c => c.CompletionTokens);
        return new JsonObject
        {
            ["prompt_tokens"] = job.PromptIds.Length, ["completion_tokens"] = completion, ["total_tokens"] = job.PromptIds.Length + completion,
        };
    }

    async Task LoadAdapter(HttpContext ctx)
    {
        var body = await ReadJson(ctx) as JsonObject ?? throw ApiError.BadRequest("the request body must be a JSON object");
        string name = StringField(body, "lora_name"), path = StringField(body, "lora_path");
        await adapters.Gate.WaitAsync(ctx.RequestAborted);
        try
        {
            if (name == baseName || adapters.Contains(name))
                throw ApiError.BadRequest($"The lora adapter '{name}' has already been loaded.", "lora_name");
            if (!Directory.Exists(path)) throw ApiError.BadRequest($"lora_path: folder '{path}' not found", "lora_path");
            string internalName = adapters.NewInternalName();
            try { await engine.Invoke(() => served.Lora.Load(path, internalName)); }
            catch (MmxException e) { throw ApiError.BadRequest($"Failed to load the lora adapter '{name}': {e.Message}", "lora_path"); }
            catch (IOException e) { throw ApiError.BadRequest($"Failed to load the lora adapter '{name}': {e.Message}", "lora_path"); }
            adapters.Add(name, internalName, Path.GetFullPath(path));
        }
        finally { adapters.Gate.Release(); }
        await WriteText(ctx, 200, $"Success: LoRA adapter '{name}' added successfully.");
    }

    async Task UnloadAdapter(HttpContext ctx)
    {
        var body = await ReadJson(ctx) as JsonObject ?? throw ApiError.BadRequest("the request body must be a JSON object");
        string name = StringField(body, "lora_name");
        await adapters.Gate.WaitAsync(ctx.RequestAborted);
        try
        {
            if (!adapters.Remove(name, out var internalName))
                throw new ApiError(404, $"The lora adapter '{name}' cannot be found.", "lora_name", "model_not_found");
            await engine.RemoveAdapterWhenIdle(internalName);
        }
        finally { adapters.Gate.Release(); }
        await WriteText(ctx, 200, $"Success: LoRA adapter '{name}' removed successfully.");
    }

    static string StringField(JsonObject o, string key)
    {
        var node = o[key];
        if (node is null || node.GetValueKind() == JsonValueKind.Null) throw ApiError.BadRequest($"{key} is required", key);
        if (node.GetValueKind() != JsonValueKind.String) throw ApiError.BadRequest($"{key} must be a string", key);
        var value = node.GetValue<string>();
        if (value.Length == 0) throw ApiError.BadRequest($"{key} must not be empty", key);
        return value;
    }

    static async Task<JsonNode?> ReadJson(HttpContext ctx)
    {
        try { return await JsonNode.ParseAsync(ctx.Request.Body, cancellationToken: ctx.RequestAborted); }
        catch (JsonException e) { throw ApiError.BadRequest($"the request body is not valid JSON: {e.Message}"); }
    }

    static Task WriteJson(HttpContext ctx, int status, JsonNode body)
    {
        ctx.Response.StatusCode = status;
        ctx.Response.ContentType = "application/json";
        return ctx.Response.WriteAsync(Json.Write(body), Encoding.UTF8, ctx.RequestAborted);
    }

    static Task WriteText(HttpContext ctx, int status, string body)
    {
        ctx.Response.StatusCode = status;
        ctx.Response.ContentType = "text/plain; charset=utf-8";
        return ctx.Response.WriteAsync(body, Encoding.UTF8, ctx.RequestAborted);
    }

    /// <summary>Every handler's error boundary: an error object with its status, never a stack trace.</summary>
    static async Task Guard(HttpContext ctx, Func<Task> handler)
    {
        ApiError? error;
        try
        {
            await handler();
            return;
        }
        catch (ApiError e) { error = e; }
        catch (BadHttpRequestException e) { error = new ApiError(e.StatusCode, e.Message, code: e.StatusCode == 413 ? "request_too_large" : "invalid_request_error"); }
        catch (OperationCanceledException) when (ctx.RequestAborted.IsCancellationRequested) { return; }
        catch (Exception e) { error = new ApiError(500, $"internal error: {e.GetType().Name}: {e.Message}", code: "internal_error"); }
        if (ctx.Response.HasStarted) return;
        try { await WriteJson(ctx, error.Status, error.ToJson()); }
        catch (Exception) when (ctx.RequestAborted.IsCancellationRequested) { }
    }
}
