using System.Text;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;

namespace MMedExpert.Serving.Server;

/// <summary>Server-sent events as OpenAI streams them: <c>data: {json}\n\n</c> per chunk, <c>data: [DONE]\n\n</c> at the end.</summary>
public sealed class SseWriter(HttpResponse response)
{
    bool started;

    async Task StartAsync(CancellationToken cancel)
    {
        if (started) return;
        started = true;
        response.StatusCode = 200;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        await response.StartAsync(cancel);
    }

    public bool Started => started;

    public async Task WriteAsync(JsonNode chunk, CancellationToken cancel)
    {
        await StartAsync(cancel);
        await response.WriteAsync("data: " + Json.Write(chunk) + "\n\n", Encoding.UTF8, cancel);
        await response.Body.FlushAsync(cancel);
    }

    public async Task DoneAsync(CancellationToken cancel)
    {
        await StartAsync(cancel);
        await response.WriteAsync("data: [DONE]\n\n", Encoding.UTF8, cancel);
        await response.Body.FlushAsync(cancel);
    }
}
