using System.Collections.Concurrent;
using MMedExpert.Core;
using MMedExpert.Core.Model.Generation;
using MMedExpert.Core.Model.Text;
using MMedExpert.Core.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace MMedExpert.Serving.Server;

/// <summary>
/// Continuous (iteration-level) batching on one engine thread, the only thread that touches the model. Each iteration:
/// <list type="number">
/// <item>runs pending adapter loads/unloads;</item>
/// <item>admits waiting requests, oldest first, into free slots (n = k takes k): the prompt is prefilled alone (batch 1),
///   its keys/values are copied into its slots (<see cref="SlotCache"/>) and each choice's first token is sampled from
///   the prefill logits;</item>
/// <item>runs ONE batched decode step for every used slot, whatever model each slot's request asked for, and samples each slot's next token with its request's own
///   settings and its own seeded generator (a request's output does not depend on what else is in the batch);</item>
/// <item>sends the tokens to the requests and frees the slots of finished sequences.</item>
/// </list>
/// New requests join between decode steps; they never wait for the batch to drain.
/// <para>Mixed adapters: a prompt is prefilled with its request's adapter active (<c>LoraAdapters.SetActive</c>); a decode
/// step routes each row to its slot's adapter, or to none for the base (<c>LoraAdapters.SetRowAdapters</c>), so requests
/// for the base and for different adapters share decode steps. Admission is strictly in arrival order.</para>
/// </summary>
public sealed class BatchEngine : IDisposable
{
    sealed class Sequence
    {
        public required GenerationJob Job { get; init; }
        public required int Choice { get; init; }
        public required int Row { get; init; }
        public required Generator Generator { get; init; }
        public required GenerationOptions Options { get; init; }
        public int Generated;
        public long LastToken;
    }

    readonly ServedModel served;
    readonly SlotCache slots;
    readonly ConcurrentQueue<GenerationJob> incoming = new();
    readonly ConcurrentQueue<Func<bool>> control = new();
    readonly List<GenerationJob> waiting = new();
    readonly List<Sequence> active = new();
    readonly SemaphoreSlim wake = new(0);
    readonly Thread thread;
    readonly CancellationTokenSource stopping = new();
    readonly HashSet<string> removing = new();
    long steps, tokens, mixedSteps;

    public int MaxBatch => slots.Rows;
    public int MaxModelLen { get; }
    /// <summary>
    /// Decode steps run, tokens generated and slot cache compactions so far; MixedSteps: the decode steps whose rows were
    /// for more than one model (the base and adapters, or several adapters).
    /// </summary>
    public (long Steps, long Tokens, int Compactions, long MixedSteps) Statistics =>
        (Interlocked.Read(ref steps), Interlocked.Read(ref tokens), slots.Compactions, Interlocked.Read(ref mixedSteps));
    public Exception? Fault { get; private set; }
    /// <summary>Requests submitted that the engine loop has not taken yet (it takes them all at each iteration).</summary>
    public int Queued => incoming.Count;

    public BatchEngine(ServedModel served, int maxBatch, int maxModelLen)
    {
        this.served = served;
        MaxModelLen = maxModelLen;
        // Headroom beyond max_model_len so compactions (a copy of the cache) are rare.
        long capacity = maxModelLen + Math.Max(64, maxModelLen / 4);
        slots = new SlotCache(served.Model.Config, maxBatch, capacity, served.Model.DType, served.Model.Device);
        thread = new Thread(Run) { Name = "mmx-serve-engine", IsBackground = true };
        thread.Start();
    }

    public void Submit(GenerationJob job)
    {
        if (stopping.IsCancellationRequested) throw new ApiError(503, "the server is stopping", code: "server_stopping");
        incoming.Enqueue(job);
        wake.Release();
    }

    /// <summary>Runs <paramref name="action"/> on the engine thread between iterations (adapter loads and unloads).</summary>
    public Task<T> Invoke<T>(Func<T> action)
    {
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        control.Enqueue(() =>
        {
            try { done.SetResult(action()); }
            catch (Exception e) { done.SetException(e); }
            return true;
        });
        wake.Release();
        return done.Task;
    }

    /// <summary>
    /// Removes adapter <paramref name="adapter"/> once no running sequence uses it; waiting requests for it fail with 404.
    /// </summary>
    public Task RemoveAdapterWhenIdle(string adapter) => Invoke(() => { removing.Add(adapter); return true; });

    void Run()
    {
        try
        {
            while (!stopping.IsCancellationRequested)
            {
                while (control.TryDequeue(out var op)) op();
                while (incoming.TryDequeue(out var job)) waiting.Add(job);
                RemovePendingAdapters();
                if (active.Count == 0 && waiting.Count == 0)
                {
                    wake.Wait(stopping.Token);
                    continue;
                }
                DropCancelled();
                Admit();
                if (active.Count > 0) DecodeStep();
                else if (waiting.Count > 0 && control.IsEmpty && incoming.IsEmpty) wake.Wait(TimeSpan.FromMilliseconds(5));
            }
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested) { }
        catch (Exception e)
        {
            // A fault of the engine itself (not of one request): every request in flight gets an error, new ones are refused.
            Fault = e;
            stopping.Cancel();
        }
        var error = new ApiError(503, Fault is null ? "the server is stopping" : $"the engine stopped: {Fault.Message}", code: "server_stopping");
        foreach (var job in active.Select(s => s.Job).Concat(waiting).Concat(incoming).Distinct())
        {
            job.Events.Writer.TryWrite(new FailEvent(error));
            job.Events.Writer.TryComplete();
            job.DisposeImages();
        }
        while (control.TryDequeue(out var op)) op();
    }

    void RemovePendingAdapters()
    {
        foreach (var name in removing.ToList())
        {
            if (active.Any(s => s.Job.Adapter == name)) continue;
            // The last step's routing or prefill's active set may still name it.
            served.Lora.ClearRowAdapters();
            if (served.Lora.Active.Contains(name)) served.Lora.SetActive();
            if (served.Lora.Contains(name)) served.Lora.Remove(name);
            removing.Remove(name);
        }
    }

    void DropCancelled()
    {
        waiting.RemoveAll(job =>
        {
            if (!job.Cancelled) return false;
            job.Events.Writer.TryComplete();
            job.DisposeImages();
            return true;
        });
        foreach (var s in active.Where(s => s.Job.Cancelled).ToList()) Finish(s, FinishReason.Length, report: false);
    }

    /// <summary>Strict arrival order, whatever model each request is for; the head waits only for free slots.</summary>
    void Admit()
    {
        while (waiting.Count > 0)
        {
            var job = waiting[0];
            bool adapterGone = job.Adapter is not null && (!served.Lora.Contains(job.Adapter) || removing.Contains(job.Adapter));
            if (adapterGone)
            {
                waiting.RemoveAt(0);
                Fail(job, ApiError.ModelNotFound(job.ModelName));
                continue;
            }
            if (slots.FreeCount < job.N) return;
            // Prefill runs batch 1 with the request's adapter active (vision layers included, whose rows are patches, not
            // batch rows), so no row routing may be set.
            served.Lora.ClearRowAdapters();
            if (job.Adapter is null) served.Lora.SetActive(); else served.Lora.SetActive(job.Adapter);
            waiting.RemoveAt(0);
            try { Prefill(job); }
            catch (Exception e)
            {
                // One request's bad input (e.g. image features that do not match its tokens) fails that request only.
                foreach (var s in active.Where(s => s.Job == job).ToList()) Release(s);
                Fail(job, e is MmxException or ArgumentException
                    ? new ApiError(400, e.Message, "messages", "invalid_request_error")
                    : new ApiError(500, $"the request failed: {e.Message}", code: "internal_error"));
            }
            finally { job.DisposeImages(); }
        }
    }

    void Prefill(GenerationJob job)
    {
        var model = served.Model;
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        int length = job.PromptIds.Length;
        var ids = tensor(job.PromptIds.Select(i => (long)i).ToArray(), new long[] { 1, length }).to(model.Device);
        using var prompt = new KvCache(model.Config, 1, length, model.DType, model.Device);
        var (hidden, deltas) = model.Prefill(ids, null, job.PixelValues, job.GridThw, prompt);
        var logits = model.Logits(hidden.narrow(1, length - 1, 1).squeeze(1));
        long delta = deltas.cpu().data<long>()[0];
        slots.ReserveFor(length);
        var fresh = new List<Sequence>();
        for (int c = 0; c < job.N; c++)
        {
            int row = slots.Place(prompt, delta);
            var s = new Sequence
            {
                Job = job, Choice = c, Row = row,
                Generator = new Generator((ulong)(c == 0 ? job.Seed : Seeds.Derive(job.Seed, c))),
                Options = new GenerationOptions
                {
                    MaxNewTokens = job.MaxTokens, Temperature = job.Temperature, TopP = job.TopP, TopK = job.TopK,
                    Seed = job.Seed, StopTokenIds = job.IgnoreEos ? Array.Empty<int>() : served.StopTokenIds,
                    SuppressTokenIds = served.SuppressTokenIds,
                },
            };
            active.Add(s);
            fresh.Add(s);
        }
        var logProbs = logits.to_type(ScalarType.Float32).log_softmax(-1);
        foreach (var s in fresh) Emit(s, logits, logProbs, 0);
    }

    void DecodeStep()
    {
        var model = served.Model;
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var (mask, deltas, rows) = slots.PrepareStep(model.Device);
        var feed = new long[rows];
        Array.Fill(feed, model.Config.PaddingTokenId);
        foreach (var s in active) feed[s.Row] = s.LastToken;
        RouteRows(rows);
        using var view = slots.Cache.Rows(rows);
        var hidden = model.DecodeStep(tensor(feed, new long[] { rows, 1 }), deltas, view, mask);
        slots.CommitStep();
        var logits = model.Logits(hidden.squeeze(1));
        var logProbs = logits.to_type(ScalarType.Float32).log_softmax(-1);
        Interlocked.Increment(ref steps);
        foreach (var s in active.ToList()) Emit(s, logits, logProbs, s.Row);
    }

    /// <summary>
    /// Routes each decoded row to its slot's adapter (null: the base). Free rows only carry padding: with one model in the
    /// batch they take its adapter, so single-model steps compute each LoRA layer on the whole batch without a gather.
    /// </summary>
    void RouteRows(int rows)
    {
        var models = active.Select(s => s.Job.Adapter).Distinct().ToList();
        if (models.Count > 1) Interlocked.Increment(ref mixedSteps);
        var routed = new string?[rows];
        if (models.Count == 1) Array.Fill(routed, models[0]);
        foreach (var s in active) routed[s.Row] = s.Job.Adapter;
        served.Lora.SetRowAdapters(routed);
    }

    /// <summary>Samples sequence <paramref name="s"/>'s next token from row <paramref name="row"/> and reports it.</summary>
    void Emit(Sequence s, Tensor logits, Tensor logProbs, int row)
    {
        if (s.Job.Cancelled || s.Job.StopRequested(s.Choice)) { Finish(s, FinishReason.Stop); return; }
        using var scope = NewDisposeScope();
        var next = TokenSampler.Sample(logits.narrow(0, row, 1), s.Options, s.Generator);
        int token = (int)next.cpu().data<long>()[0];
        var rowLogProbs = logProbs.narrow(0, row, 1).squeeze(0);
        float logProb = rowLogProbs[token].item<float>();
        (int, float)[]? top = null;
        bool isStop = s.Options.StopTokenIds.Contains(token);
        if (s.Job.TopLogprobs > 0 && !isStop)
        {
            var (values, indices) = rowLogProbs.topk(s.Job.TopLogprobs);
            var v = values.cpu().data<float>().ToArray();
            var i = indices.cpu().data<long>().ToArray();
            top = Enumerable.Range(0, v.Length).Select(k => ((int)i[k], v[k])).ToArray();
        }
        s.Generated++;
        s.LastToken = token;
        Interlocked.Increment(ref tokens);
        s.Job.Events.Writer.TryWrite(new TokenEvent(s.Choice, token, logProb, isStop, top));
        if (isStop) Finish(s, FinishReason.Stop);
        else if (s.Generated >= s.Options.MaxNewTokens) Finish(s, FinishReason.Length);
    }

    void Finish(Sequence s, FinishReason reason, bool report = true)
    {
        Release(s);
        if (report) s.Job.Events.Writer.TryWrite(new FinishEvent(s.Choice, reason));
        if (!active.Any(a => a.Job == s.Job)) s.Job.Events.Writer.TryComplete();
    }

    void Release(Sequence s)
    {
        if (!active.Remove(s)) return;
        slots.Free(s.Row);
        s.Generator.Dispose();
    }

    static void Fail(GenerationJob job, ApiError error)
    {
        job.Events.Writer.TryWrite(new FailEvent(error));
        job.Events.Writer.TryComplete();
        job.DisposeImages();
    }

    /// <summary>Stops the loop (requests in flight get a 503 error) and waits for the thread.</summary>
    public void Stop()
    {
        stopping.Cancel();
        wake.Release();
        thread.Join();
    }

    public void Dispose()
    {
        Stop();
        slots.Dispose();
        wake.Dispose();
        stopping.Dispose();
    }
}
