namespace MMedExpert.Algebra.Metrics

/// SplitMix64 (Steele, Lea, Flood 2014): a tiny, fully specified generator, so a seeded bootstrap gives the same
/// interval on every .NET version (System.Random's seeded sequence is not guaranteed across versions).
/// Pure: the state is a value; `next` returns the output and the following state.
module SplitMix64 =
    let private gamma = 0x9E3779B97F4A7C15UL

    /// One step: (64 random bits, next state).
    let next (state: uint64) : struct (uint64 * uint64) =
        let s = state + gamma
        let z1 = (s ^^^ (s >>> 30)) * 0xBF58476D1CE4E5B9UL
        let z2 = (z1 ^^^ (z1 >>> 27)) * 0x94D049BB133111EBUL
        struct (z2 ^^^ (z2 >>> 31), s)

    /// Maps 64 random bits to an integer in [0, n) by multiply-shift on the high 32 bits (bias below n / 2^32).
    let below (n: int) (bits: uint64) : int =
        if n <= 0 then invalidArg (nameof n) $"n must be positive (got {n})"
        int (((bits >>> 32) * uint64 n) >>> 32)
