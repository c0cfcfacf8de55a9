using System.Threading.Channels;
using MMedExpert.Core.Model.Generation;
using static TorchSharp.torch;

namespace MMedExpert.Serving.Server;

/// <summary>What the engine reports to a request, in order, per choice: tokens, then one finish (or one failure for all).</summary>
public abstract record EngineEvent;
/// <param name="IsStop">a stop token (&lt;|im_end|&gt;, &lt;|endoftext|&gt;): counted in usage, never in content or logprobs</param>
/// <param name="Top">the most likely tokens and their log-probabilities, when top_logprobs was asked for</param>
public sealed record TokenEvent(int Choice, int TokenId, float LogProb, bool IsStop, (int Id, float LogProb)[]? Top) : EngineEvent;
public sealed record FinishEvent(int Choice, FinishReason Reason) : EngineEvent;
public sealed record FailEvent(ApiError Error) : EngineEvent;

/// <summary>
/// One chat completion request as the engine sees it: prompt ids and images, the adapter it runs with, each choice's
/// sampling settings, and the channel the engine writes its events to. The HTTP side may stop a choice early (a stop
/// string was seen) or cancel the whole request (the client went away); the engine frees those slots at its next step.
/// </summary>
public sealed class GenerationJob
{
    public required string ModelName { get; init; }
    /// <summary>Internal adapter name, null for the base model.</summary>
    public string? Adapter { get; init; }
    public required int[] PromptIds { get; init; }
    public Tensor? PixelValues { get; set; }
    public Tensor? GridThw { get; set; }
    public required int N { get; init; }
    public required int MaxTokens { get; init; }
    public required double Temperature { get; init; }
    public required double TopP { get; init; }
    public int TopK { get; init; }
    /// <summary>Seed of choice 0's generator; choice i &gt; 0 uses Seeds.Derive(seed, i).</summary>
    public required long Seed { get; init; }
    public int TopLogprobs { get; init; }
    /// <summary>Generate exactly <see cref="MaxTokens"/>: no stop token ends a sequence (vLLM's ignore_eos).</summary>
    public bool IgnoreEos { get; init; }
    public Channel<EngineEvent> Events { get; } = Channel.CreateUnbounded<EngineEvent>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });

    readonly System.Collections.Concurrent.ConcurrentDictionary<int, bool> stopRequested = new();
    volatile bool cancelled;

    public bool Cancelled => cancelled;
    public void Cancel() => cancelled = true;
    public void RequestStop(int choice) => stopRequested[choice] = true;
    public bool StopRequested(int choice) => stopRequested.ContainsKey(choice);

    public void DisposeImages()
    {
        PixelValues?.Dispose();
        GridThw?.Dispose();
        PixelValues = null;
        GridThw = null;
    }
}
