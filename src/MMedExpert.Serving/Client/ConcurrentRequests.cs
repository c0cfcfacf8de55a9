namespace MMedExpert.Serving.Client;

/// <summary>Runs a list of requests with at most N in flight, results in input order (the first failure is rethrown as is).</summary>
public static class ConcurrentRequests
{
    public static IReadOnlyList<T> Run<T>(int count, int concurrency, Func<int, CancellationToken, Task<T>> request, CancellationToken cancel = default)
    {
        if (concurrency < 1) throw new ArgumentException($"concurrency must be at least 1 (got {concurrency})");
        using var gate = new SemaphoreSlim(concurrency);
        // A failure cancels the requests that have not started, so an unreachable server is reported once, quickly.
        using var failed = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        async Task<T> One(int i)
        {
            await gate.WaitAsync(failed.Token).ConfigureAwait(false);
            try { return await request(i, failed.Token).ConfigureAwait(false); }
            catch { failed.Cancel(); throw; }
            finally { gate.Release(); }
        }
        var tasks = Enumerable.Range(0, count).Select(One).ToArray();
        try { Task.WaitAll(tasks); }
        catch (AggregateException)
        {
            // The first real failure, not a cancellation it caused.
            var first = tasks.Where(t => t.IsFaulted).Select(t => t.Exception!.InnerException!).FirstOrDefault(e => e is not OperationCanceledException)
                        ?? tasks.Where(t => t.IsFaulted || t.IsCanceled).Select(t => t.Exception?.InnerException ?? new OperationCanceledException()).First();
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(first).Throw();
        }
        return tasks.Select(t => t.Result).ToList();
    }
}
