namespace MMedExpert.Algebra.Metrics

/// A two-sided interval [Low, High].
type Interval = { Low: float; High: float }

/// How bootstrap intervals are drawn: number of resamples, seed, confidence level (0.95 for a 95% interval).
type BootstrapSpec = { Resamples: int; Seed: uint64; Level: float }

/// Accuracy of a set of graded items with its bootstrap percentile interval.
type Score = { N: int; Correct: int; Accuracy: float; Ci: Interval }

/// The score of the items sharing one value of a grouping field (a specialty, a modality, a question type).
type GroupScore = { Group: string; Score: Score }

/// Pure metric functions of the evaluation: accuracy, rates, quantiles, percentile bootstrap, grouping.
module Scoring =
    /// The default of the project: 1000 resamples, seed 0, 95% percentile interval.
    let defaultBootstrap = { Resamples = 1000; Seed = 0UL; Level = 0.95 }

    let private requireItems (name: string) (xs: bool[]) =
        if isNull xs || xs.Length = 0 then invalidArg name "needs at least one item"

    /// Fraction of true flags (accuracy when the flags say "correct", a rate when they say "invalid").
    let rate (flags: bool[]) : float =
        requireItems (nameof flags) flags
        let mutable k = 0
        for f in flags do if f then k <- k + 1
        float k / float flags.Length

    let accuracy (correct: bool[]) : float = rate correct

    /// Quantile of an ascending sample by linear interpolation between order statistics
    /// (Hyndman–Fan type 7, the default of R and NumPy): position h = (n − 1)·q.
    let quantile (sortedAscending: float[]) (q: float) : float =
        if isNull sortedAscending || sortedAscending.Length = 0 then invalidArg (nameof sortedAscending) "empty sample"
        if not (q >= 0.0 && q <= 1.0) then invalidArg (nameof q) $"q must be in [0, 1] (got {q})"
        let h = float (sortedAscending.Length - 1) * q
        let lo = int (floor h)
        if lo >= sortedAscending.Length - 1 then sortedAscending[sortedAscending.Length - 1]
        else sortedAscending[lo] + (h - float lo) * (sortedAscending[lo + 1] - sortedAscending[lo])

    /// The central `level` interval of a sample: quantiles (1 − level)/2 and 1 − (1 − level)/2.
    let percentileInterval (level: float) (sample: float[]) : Interval =
        if not (level > 0.0 && level < 1.0) then invalidArg (nameof level) $"level must be in (0, 1) (got {level})"
        let sorted = Array.sort sample
        let tail = (1.0 - level) / 2.0
        { Low = quantile sorted tail; High = quantile sorted (1.0 - tail) }

    /// Accuracies of `spec.Resamples` resamples (n items drawn with replacement), from a SplitMix64 stream seeded by spec.Seed.
    let bootstrapAccuracies (spec: BootstrapSpec) (correct: bool[]) : float[] =
        requireItems (nameof correct) correct
        if spec.Resamples < 1 then invalidArg (nameof spec) $"Resamples must be at least 1 (got {spec.Resamples})"
        let n = correct.Length
        let out = Array.zeroCreate spec.Resamples
        let mutable state = spec.Seed
        for b in 0 .. spec.Resamples - 1 do
            let mutable hits = 0
            for _ in 1 .. n do
                let struct (bits, next) = SplitMix64.next state
                state <- next
                if correct[SplitMix64.below n bits] then hits <- hits + 1
            out[b] <- float hits / float n
        out

    /// Percentile bootstrap interval of the accuracy.
    let bootstrapCi (spec: BootstrapSpec) (correct: bool[]) : Interval =
        bootstrapAccuracies spec correct |> percentileInterval spec.Level

    /// Accuracy, counts and bootstrap interval of one set of graded items.
    let score (spec: BootstrapSpec) (correct: bool[]) : Score =
        let k = correct |> Array.sumBy (fun c -> if c then 1 else 0)
        { N = correct.Length; Correct = k; Accuracy = accuracy correct; Ci = bootstrapCi spec correct }

    /// One score per distinct group value, in ordinal order of the value; each group is resampled within itself.
    let byGroup (spec: BootstrapSpec) (groups: string[]) (correct: bool[]) : GroupScore[] =
        if groups.Length <> correct.Length then
            invalidArg (nameof groups) $"{groups.Length} group labels for {correct.Length} items"
        Array.zip groups correct
        |> Array.groupBy fst
        |> Array.sortWith (fun (a, _) (b, _) -> System.String.CompareOrdinal(a, b))
        |> Array.map (fun (g, members) -> { Group = g; Score = score spec (Array.map snd members) })
