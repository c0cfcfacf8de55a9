using Spectre.Console;

namespace MMedExpert.Core.Training;

/// <summary>A Spectre.Console progress bar with rate and ETA, drawn on stderr.</summary>
public sealed class TerminalProgress : ProgressReporter
{
    public override void Run(string description, long total, long start, Action<Action<long, string?>> body)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        console.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(),
                     new RemainingTimeColumn(), new SpinnerColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask(Markup.Escape(description), maxValue: Math.Max(1, total));
                task.Value = start;
                body((position, status) =>
                {
                    task.Value = position;
                    if (status != null) task.Description = Markup.Escape($"{description} {status}");
                });
            });
    }
}
