using MMedExpert.Core;

namespace MMedExpert.Serving.Client;

/// <summary>
/// A request to an OpenAI-compatible endpoint failed: the server answered with an error (OpenAI's
/// <c>{"error":{"message",...}}</c> or another body), the connection failed, or the request timed out. The message
/// names the URL, the HTTP status (when there was one) and the server's own message, on one line.
/// </summary>
public sealed class EndpointException : MmxException
{
    public Uri Url { get; }
    /// <summary>The HTTP status; null when no response came (connection refused, timeout).</summary>
    public int? Status { get; }
    /// <summary>The server's message (OpenAI error object's <c>message</c>) or what went wrong locally.</summary>
    public string Reason { get; }

    public EndpointException(Uri url, int? status, string reason, Exception? inner = null)
        : base(Format(url, status, reason), inner ?? new Exception(reason))
    {
        Url = url;
        Status = status;
        Reason = reason;
    }

    /// <summary>True for answers that retrying cannot change (4xx: the request itself is wrong).</summary>
    public bool IsClientError => Status is >= 400 and < 500;

    static string Format(Uri url, int? status, string reason) =>
        $"endpoint {url}: " + (status is { } s ? $"HTTP {s}: " : "") + OneLine(reason);

    static string OneLine(string text) => string.Join(' ', text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
}
