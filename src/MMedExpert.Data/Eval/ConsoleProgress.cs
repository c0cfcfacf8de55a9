using System.Diagnostics;
using Spectre.Console;

namespace MMedExpert.Data.Eval;

/// <summary>Auto: a live bar on an interactive terminal, plain lines otherwise; Plain: always lines; None: silent.</summary>
public enum ProgressMode { Auto, Plain, None }

/// <summary>
/// Progress of a long loop on stderr (stdout stays clean for --json): a Spectre.Console bar with ETA on an interactive
/// terminal, otherwise a plain line at most every 10% or 10 s (logs and CI). The advance callback is thread-safe.
/// </summary>
public static class ConsoleProgress
{
    public static T Run<T>(string label, int total, int done, Func<Action<int>, T> work, ProgressMode mode = ProgressMode.Auto)
    {
        if (mode == ProgressMode.None || total <= 0) return work(_ => { });
        bool live = mode == ProgressMode.Auto && !Console.IsErrorRedirected && !Console.IsOutputRedirected;
        return live ? RunLive(label, total, done, work) : RunPlain(label, total, done, work);
    }

    static T RunLive<T>(string label, int total, int done, Func<Action<int>, T> work)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        T result = default!;
        console.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(),
                new RemainingTimeColumn(), new SpinnerColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask(label, maxValue: total);
                task.Increment(done);
                var gate = new object();
                result = work(k => { lock (gate) task.Increment(k); });
                task.Value = task.MaxValue;
            });
        return result;
    }

    static T RunPlain<T>(string label, int total, int done, Func<Action<int>, T> work)
    {
        var clock = Stopwatch.StartNew();
        var gate = new object();
        int start = done, current = done, lastPrinted = done;
        double lastTime = 0;
        void Print()
        {
            double t = clock.Elapsed.TotalSeconds, rate = (current - start) / Math.Max(t, 1e-9);
            string eta = rate > 0 ? TimeSpan.FromSeconds((total - current) / rate).ToString(@"hh\:mm\:ss") : "?";
            Console.Error.WriteLine($"{label}: {current}/{total} ({100.0 * current / total:F0}%) elapsed {TimeSpan.FromSeconds(t):hh\\:mm\\:ss} eta {eta}");
            lastPrinted = current; lastTime = t;
        }
        var result = work(k =>
        {
            lock (gate)
            {
                current += k;
                if (current - lastPrinted >= Math.Max(1, total / 10) || clock.Elapsed.TotalSeconds - lastTime >= 10 || current == total) Print();
            }
        });
        lock (gate) if (lastPrinted != current) Print();
        return result;
    }
}
