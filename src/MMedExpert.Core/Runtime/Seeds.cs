namespace MMedExpert.Core.Runtime;

/// <summary>
/// Seeds derived from a run seed and a label (a step number, a module path), so every random draw depends only on
/// (seed, where it happens) and never on how many draws came before. That is what makes a resumed run identical to an
/// uninterrupted one without saving the state of a shared random generator. SplitMix64, not System.Random, so the
/// values are fixed by this file and not by a .NET version.
/// </summary>
public static class Seeds
{
    /// <summary>SplitMix64's output function: a bijective 64-bit mix with good avalanche.</summary>
    public static ulong Mix64(ulong z)
    {
        z += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>A seed for (seed, index), e.g. the seed of training step <paramref name="index"/>; non-negative.</summary>
    public static long Derive(long seed, long index) =>
        (long)(Mix64(Mix64((ulong)seed) ^ (ulong)index) >> 1);

    /// <summary>A seed for (seed, label), e.g. the initialization of one module; the label is hashed with FNV-1a.</summary>
    public static long Derive(long seed, string label)
    {
        ulong h = 0xCBF29CE484222325UL;
        foreach (char c in label)
        {
            h ^= c;
            h *= 0x100000001B3UL;
        }
        return Derive(seed, (long)h);
    }
}

/// <summary>A small deterministic random generator (SplitMix64) for shuffles and sampling outside torch.</summary>
public sealed class SplitMix64
{
    ulong state;

    public SplitMix64(long seed) => state = (ulong)seed;

    public ulong NextUInt64()
    {
        state += 0x9E3779B97F4A7C15UL;
        ulong z = state;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform in [0, n) without modulo bias (rejection sampling).</summary>
    public long NextInt64(long n)
    {
        if (n <= 0) throw new ArgumentOutOfRangeException(nameof(n), n, "must be positive");
        ulong un = (ulong)n, limit = ulong.MaxValue - ulong.MaxValue % un;
        ulong x;
        do x = NextUInt64(); while (x >= limit);
        return (long)(x % un);
    }

    /// <summary>Fisher–Yates shuffle in place.</summary>
    public void Shuffle<T>(IList<T> items)
    {
        for (int i = items.Count - 1; i > 0; i--)
        {
            int j = (int)NextInt64(i + 1);
            (items[i], items[j]) = (items[j], items[i]);
        }
    }
}
