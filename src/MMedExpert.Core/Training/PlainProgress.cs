using System.Diagnostics;
using System.Globalization;

namespace MMedExpert.Core.Training;

/// <summary>
/// Progress as plain lines: "description: 120/1000 (12%) 3.4 it/s, ETA 00:04:18, status". A line is written when the
/// position crosses the next <c>everyPercent</c> mark or <c>everySeconds</c> have passed, and at the end.
/// </summary>
public sealed class PlainProgress : ProgressReporter
{
    readonly TextWriter output;
    readonly double everyPercent, everySeconds;

    public PlainProgress(TextWriter output, double everyPercent = 5, double everySeconds = 30)
    {
        this.output = output;
        this.everyPercent = everyPercent;
        this.everySeconds = everySeconds;
    }

    public override void Run(string description, long total, long start, Action<Action<long, string?>> body)
    {
        var clock = Stopwatch.StartNew();
        double lastWrite = 0;
        long lastPosition = start;
        double nextMark = NextMark(start, total);
        body((position, status) =>
        {
            lastPosition = position;
            double seconds = clock.Elapsed.TotalSeconds;
            double percent = total > 0 ? 100.0 * position / total : 0;
            if (percent + 1e-9 < nextMark && seconds - lastWrite < everySeconds && position < total) return;
            output.WriteLine(Line(description, position, start, total, seconds, status));
            output.Flush();
            lastWrite = seconds;
            nextMark = NextMark(position, total);
        });
        if (lastPosition < total) output.WriteLine($"{description}: stopped at {lastPosition}/{total}");
    }

    double NextMark(long position, long total)
    {
        if (total <= 0 || everyPercent <= 0) return double.PositiveInfinity;
        double percent = 100.0 * position / total;
        return (Math.Floor(percent / everyPercent + 1e-9) + 1) * everyPercent;
    }

    /// <summary>The text of one progress line (rate and ETA from the positions done in this run).</summary>
    public static string Line(string description, long position, long start, long total, double seconds, string? status)
    {
        var inv = CultureInfo.InvariantCulture;
        double done = position - start;
        double rate = seconds > 0 ? done / seconds : 0;
        string eta = rate > 0 ? TimeSpan.FromSeconds(Math.Round((total - position) / rate)).ToString("c", inv) : "?";
        double percent = total > 0 ? 100.0 * position / total : 0;
        string line = string.Format(inv, "{0}: {1}/{2} ({3:0}%) {4:0.###} it/s, ETA {5}", description, position, total, percent, rate, eta);
        return status is null ? line : line + ", " + status;
    }
}
