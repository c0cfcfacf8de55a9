namespace MMedExpert.Core.Merging;

/// <summary>Orders module names as a person reads them: numeric path parts by value (layers.2 before layers.10).</summary>
public sealed class ModuleOrder : IComparer<string>
{
    public static readonly ModuleOrder Comparer = new();

    public int Compare(string? x, string? y)
    {
        if (ReferenceEquals(x, y)) return 0;
        if (x == null) return -1;
        if (y == null) return 1;
        var a = x.Split('.');
        var b = y.Split('.');
        for (int i = 0; i < Math.Min(a.Length, b.Length); i++)
        {
            bool na = long.TryParse(a[i], out var ia), nb = long.TryParse(b[i], out var ib);
            int c = na && nb ? ia.CompareTo(ib) : na != nb ? (na ? -1 : 1) : string.CompareOrdinal(a[i], b[i]);
            if (c != 0) return c;
        }
        return a.Length.CompareTo(b.Length);
    }
}
