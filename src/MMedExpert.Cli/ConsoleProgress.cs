using Spectre.Console;

namespace MMedExpert.Cli;

/// <summary>
/// Progress of a long loop: a Spectre.Console bar on stderr when stderr is a terminal, otherwise plain lines (at most one
/// every 2 s, plus the last), so logs stay readable and stdout stays free for --json output.
/// </summary>
public static class ConsoleProgress
{
    /// <summary>Runs <paramref name="work"/> with a callback (done, total, item) that updates the display.</summary>
    public static T Run<T>(string title, Func<Action<int, int, string>, T> work)
    {
        if (Console.IsErrorRedirected)
        {
            var last = DateTime.MinValue;
            return work((done, total, item) =>
            {
                if (done < total && DateTime.UtcNow - last < TimeSpan.FromSeconds(2)) return;
                last = DateTime.UtcNow;
                Console.Error.WriteLine($"{title}: {done}/{total} {item}");
            });
        }
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        T result = default!;
        console.Progress()
            .AutoClear(true)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask(Markup.Escape(title), maxValue: 1);
                result = work((done, total, item) =>
                {
                    task.MaxValue = Math.Max(1, total);
                    task.Value = done;
                    task.Description = Markup.Escape($"{title} {item}");
                });
            });
        return result;
    }
}
