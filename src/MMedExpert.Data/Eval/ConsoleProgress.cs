using MMedExpert.Core.Training;

namespace MMedExpert.Data.Eval;

/// <summary>Auto: a live bar on an interactive terminal, plain lines otherwise; Plain: always lines; None: silent.</summary>
public enum ProgressMode { Auto, Plain, None }

/// <summary>
/// A counting front end to the project's one progress reporter (<see cref="ProgressReporter"/>: a Spectre.Console bar
/// on a terminal, plain lines on stderr otherwise), for loops that advance by item counts and return a value.
/// The advance callback is thread-safe.
/// </summary>
public static class ConsoleProgress
{
    public static T Run<T>(string label, int total, int done, Func<Action<int>, T> work, ProgressMode mode = ProgressMode.Auto)
    {
        if (mode == ProgressMode.None || total <= 0) return work(_ => { });
        var reporter = mode == ProgressMode.Plain ? ProgressReporter.Create(Console.Error) : ProgressReporter.Create();
        T result = default!;
        long position = done;
        var gate = new object();
        reporter.Run(label, total, done, report =>
            result = work(k =>
            {
                lock (gate)
                {
                    position += k;
                    report(position, null);
                }
            }));
        return result;
    }
}
