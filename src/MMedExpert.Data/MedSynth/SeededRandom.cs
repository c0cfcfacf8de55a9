using MMedExpert.Algebra.Metrics;

namespace MMedExpert.Data.MedSynth;

/// <summary>
/// A deterministic random stream on SplitMix64 (the same generator as the bootstrap), so a seed gives the same data on
/// every .NET version and machine. Only +, −, ×, ÷ and √ are used on its outputs elsewhere in MedSynth: those are exactly
/// rounded in IEEE arithmetic, while libm functions (exp, sin) may differ in the last bit between platforms.
/// </summary>
public sealed class SeededRandom
{
    ulong _state;

    public SeededRandom(ulong seed) { _state = seed; }

    /// <summary>An independent stream for one (seed, stream, index) triple: items draw from their own streams, so
    /// generating them in parallel or in another order gives the same items.</summary>
    public static SeededRandom For(ulong seed, ulong stream, ulong index)
    {
        var (a, _) = SplitMix64.next(seed ^ (stream * 0xD1B54A32D192ED03UL));
        var (b, _) = SplitMix64.next(a ^ (index * 0x9E3779B97F4A7C15UL));
        return new SeededRandom(b);
    }

    public ulong NextBits()
    {
        var (bits, next) = SplitMix64.next(_state);
        _state = next;
        return bits;
    }

    /// <summary>Uniform in [0, 1) with 53 random bits.</summary>
    public double NextDouble() => (NextBits() >> 11) * (1.0 / 9007199254740992.0);

    public double Uniform(double lo, double hi) => lo + (hi - lo) * NextDouble();

    /// <summary>Uniform integer in [lo, hi] (both inclusive).</summary>
    public int Int(int lo, int hi) => lo + SplitMix64.below(hi - lo + 1, NextBits());

    public bool Chance(double p) => NextDouble() < p;

    public T Pick<T>(IReadOnlyList<T> xs) => xs[SplitMix64.below(xs.Count, NextBits())];

    /// <summary>Approximately standard normal: Irwin–Hall sum of four uniforms, rescaled to unit variance.</summary>
    public double Gaussian() => (NextDouble() + NextDouble() + NextDouble() + NextDouble() - 2.0) * 1.7320508075688772;

    /// <summary>Approximately standard normal from one 64-bit draw: the Irwin–Hall sum of its four 16-bit quarters.</summary>
    public double FastGaussian()
    {
        ulong b = NextBits();
        double sum = (b & 0xFFFF) + ((b >> 16) & 0xFFFF) + ((b >> 32) & 0xFFFF) + (b >> 48);
        return (sum / 65536.0 - 2.0) * 1.7320508075688772;
    }

    /// <summary>A uniformly random unit vector (rejection sampling in the disk, then normalised with √).</summary>
    public (double X, double Y) UnitVector()
    {
        while (true)
        {
            double x = Uniform(-1, 1), y = Uniform(-1, 1), r2 = x * x + y * y;
            if (r2 > 1e-6 && r2 <= 1) { double r = Math.Sqrt(r2); return (x / r, y / r); }
        }
    }

    /// <summary>Fisher–Yates shuffle in place.</summary>
    public void Shuffle<T>(IList<T> xs)
    {
        for (int i = xs.Count - 1; i > 0; i--)
        {
            int j = Int(0, i);
            (xs[i], xs[j]) = (xs[j], xs[i]);
        }
    }
}
