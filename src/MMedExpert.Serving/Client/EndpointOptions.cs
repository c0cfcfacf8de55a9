namespace MMedExpert.Serving.Client;

/// <summary>How the client talks to an endpoint: per-request timeout, bounded retries, optional API key.</summary>
public sealed record EndpointOptions
{
    /// <summary>Longest wait for one request's answer (a long generation batch on a busy server takes minutes).</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromMinutes(10);
    /// <summary>Extra tries after a connection error, a timeout or a 5xx answer (never after a 4xx: the request is wrong).</summary>
    public int Retries { get; init; } = 2;
    /// <summary>Wait before the first retry; doubled for each further one.</summary>
    public TimeSpan RetryDelay { get; init; } = TimeSpan.FromMilliseconds(500);
    /// <summary>Sent as <c>Authorization: Bearer …</c> when set (vLLM's <c>--api-key</c>).</summary>
    public string? ApiKey { get; init; }
}
