namespace MMedExpert.Core.Merging;

/// <summary>Short unique names for expert folders: the last path component, extended upwards only where two experts
/// would otherwise share a name (runs/x/experts/cardiology/gba and .../radiology/gba → cardiology/gba, radiology/gba).</summary>
public static class ExpertNames
{
    public static string[] Unique(IReadOnlyList<string> dirs)
    {
        var parts = dirs.Select(d => Path.GetFullPath(d).TrimEnd(Path.DirectorySeparatorChar).Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries)).ToArray();
        var take = Enumerable.Repeat(1, dirs.Count).ToArray();
        string Name(int i) => string.Join("/", parts[i].Skip(Math.Max(0, parts[i].Length - take[i])));
        while (true)
        {
            var names = Enumerable.Range(0, dirs.Count).Select(Name).ToArray();
            var clashing = Enumerable.Range(0, dirs.Count).Where(i => names.Count(n => n == names[i]) > 1 && take[i] < parts[i].Length).ToList();
            if (clashing.Count == 0) return names;
            foreach (var i in clashing) take[i]++;
        }
    }
}
