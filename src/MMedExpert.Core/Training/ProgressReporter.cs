namespace MMedExpert.Core.Training;

/// <summary>
/// Progress of a long loop, on stderr (stdout stays free for results and --json): a Spectre.Console bar with ETA when
/// stderr is a terminal, plain lines otherwise (CI, redirected logs) every N percent or every K seconds.
/// </summary>
public abstract class ProgressReporter
{
    /// <summary>Runs <paramref name="body"/>, which reports (position, status) through the callback it is given.</summary>
    public abstract void Run(string description, long total, long start, Action<Action<long, string?>> body);

    /// <summary>Picks the terminal bar or plain lines; <paramref name="plainOut"/> forces plain lines to that writer.</summary>
    public static ProgressReporter Create(TextWriter? plainOut = null, double everyPercent = 5, double everySeconds = 30)
    {
        if (plainOut == null && !Console.IsErrorRedirected && Environment.GetEnvironmentVariable("CI") is null or "")
            return new TerminalProgress();
        return new PlainProgress(plainOut ?? Console.Error, everyPercent, everySeconds);
    }

    /// <summary>Reports nothing.</summary>
    public static ProgressReporter None { get; } = new NoProgress();

    sealed class NoProgress : ProgressReporter
    {
        public override void Run(string description, long total, long start, Action<Action<long, string?>> body) => body((_, _) => { });
    }
}
