namespace MMedExpert.Core.Runtime;

/// <summary>
/// This process's resident memory from /proc/self/status (Linux): VmRSS now and VmHWM, the high-water mark since the
/// process started. The kernel offers no way to reset VmHWM from inside the process, so a peak per phase needs a fresh
/// process per phase (or sampling VmRSS at the points where memory is highest). Null where /proc is absent.
/// </summary>
public static class ProcessMemory
{
    public static long? CurrentRssBytes() => Read("VmRSS:");

    public static long? PeakRssBytes() => Read("VmHWM:");

    static long? Read(string field)
    {
        const string path = "/proc/self/status";
        if (!File.Exists(path)) return null;
        foreach (var line in File.ReadLines(path))
        {
            if (!line.StartsWith(field, StringComparison.Ordinal)) continue;
            var parts = line[field.Length..].Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length >= 1 && long.TryParse(parts[0], out var kb)) return kb * 1024;
        }
        return null;
    }
}
