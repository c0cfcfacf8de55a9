namespace MMedExpert.Core.IO;

/// <summary>
/// Writes files and folders so that a reader never sees a partial output: everything goes to a temporary sibling
/// first and is renamed into place only when complete (rename is atomic on one file system).
/// </summary>
public static class AtomicFile
{
    /// <summary>Calls <paramref name="write"/> with a temporary path next to <paramref name="path"/>, then renames it.</summary>
    public static void Write(string path, Action<string> write)
    {
        string full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        string tmp = $"{full}.tmp-{Environment.ProcessId}-{Guid.NewGuid():N}";
        try
        {
            write(tmp);
            File.Move(tmp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
        }
    }

    public static void WriteAllText(string path, string text) => Write(path, tmp => File.WriteAllText(tmp, text));

    public static void WriteAllBytes(string path, byte[] bytes) => Write(path, tmp => File.WriteAllBytes(tmp, bytes));

    /// <summary>
    /// Builds a whole folder at a temporary sibling and renames it to <paramref name="dir"/>; an existing folder of that
    /// name is replaced only after the new one is complete.
    /// </summary>
    public static void WriteDirectory(string dir, Action<string> write)
    {
        string full = Path.GetFullPath(dir).TrimEnd(Path.DirectorySeparatorChar);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        string tmp = $"{full}.tmp-{Environment.ProcessId}-{Guid.NewGuid():N}";
        Directory.CreateDirectory(tmp);
        try
        {
            write(tmp);
            string? old = null;
            if (Directory.Exists(full))
            {
                old = $"{full}.old-{Guid.NewGuid():N}";
                Directory.Move(full, old);
            }
            Directory.Move(tmp, full);
            if (old != null) Directory.Delete(old, recursive: true);
        }
        finally
        {
            if (Directory.Exists(tmp)) Directory.Delete(tmp, recursive: true);
        }
    }
}
