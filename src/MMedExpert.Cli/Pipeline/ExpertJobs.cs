using MMedExpert.Core.Training;
using TorchSharp;

namespace MMedExpert.Cli.Pipeline;

/// <summary>
/// Runs a stage's independent jobs (one expert's training, one model's evaluation) <c>jobs</c> at a time, each on its
/// own share of the torch threads. On the small embedded model libtorch's intra-op threads gain little (2 threads are
/// 1.13× one), while two jobs of one thread each run at nearly the speed of one (paper/learnability, section 13): two
/// at a time do a stage's work in about 57 % of its time.
/// </summary>
public static class ExpertJobs
{
    /// <summary>
    /// Runs <paramref name="run"/> on every item and returns the results in the items' order. With one job this is a
    /// plain loop on the calling thread with its progress bar. With more, each job gets a dedicated thread (libtorch's
    /// OpenMP thread count is a per-thread setting, so pool threads would keep a stale one) set to its share of the
    /// threads, and progress goes to stderr as plain lines (two live bars cannot share a terminal). Randomness is per
    /// job already (seeded generators, <see cref="MMedExpert.Core.Runtime.StepRandom"/>), so results do not depend on
    /// which job runs first. The first failure is rethrown once every running job has stopped.
    /// </summary>
    public static IReadOnlyList<TResult> Run<T, TResult>(IReadOnlyList<T> items, int jobs, Func<T, ProgressReporter, TResult> run)
    {
        if (jobs < 1) throw new PipelineException($"jobs must be at least 1 (got {jobs})");
        if (jobs == 1 || items.Count <= 1) return items.Select(i => run(i, ProgressReporter.Create())).ToList();

        int threads = torch.get_num_threads(), perJob = Math.Max(1, threads / jobs);
        var results = new TResult[items.Count];
        var errors = new List<Exception>();
        int next = -1;
        var workers = Enumerable.Range(0, Math.Min(jobs, items.Count)).Select(_ => new Thread(() =>
        {
            torch.set_num_threads(perJob);
            int i;
            while ((i = Interlocked.Increment(ref next)) < items.Count)
            {
                lock (errors) if (errors.Count > 0) return; // stop taking new work after a failure
                try { results[i] = run(items[i], ProgressReporter.Create(Console.Error)); }
                catch (Exception e) { lock (errors) errors.Add(e); return; }
            }
        }, maxStackSize: 16 << 20) { IsBackground = true }).ToList();
        foreach (var w in workers) w.Start();
        foreach (var w in workers) w.Join();
        torch.set_num_threads(threads); // the atomic the workers changed; this thread's own setting is unchanged
        if (errors.Count > 0) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(errors[0]).Throw();
        return results;
    }
}
