namespace MMedExpert.Algebra.Advantages

open System

/// Which standard deviation a normalisation divides by: sample (n − 1, what `torch.std` and TRL use) or population (n).
type StdKind =
    | Sample
    | Population

/// Mean and standard deviation of one group of rewards, computed so that every finite input gives a finite answer.
/// WHY the power-of-two rescaling: Σx and Σx² overflow for rewards near 1e300 and lose everything for subnormal ones;
/// multiplying by 2^-e is exact (no rounding), so results equal the textbook formulas wherever those do not overflow.
module GroupStats =

    /// Raises ArgumentException naming the first non-finite reward: a NaN reward is an upstream bug (spec or model),
    /// and silently turning it into an advantage would train on garbage.
    let validate (rewards: float[]) =
        if isNull rewards then nullArg "rewards"
        for i in 0 .. rewards.Length - 1 do
            if not (Double.IsFinite rewards[i]) then
                invalidArg "rewards" (sprintf "reward %d of the group (of %d) is %g: rewards must be finite" i rewards.Length rewards[i])

    /// True when the group has no spread (every element bitwise-equal in value); an empty group counts as constant.
    let isConstant (xs: float[]) =
        xs.Length = 0 || Array.forall (fun x -> x = xs[0]) xs

    /// The binary exponent e with max|x| in [2^e, 2^(e+1)); 0 for an all-zero group.
    let exponent (xs: float[]) =
        let m = xs |> Array.fold (fun acc x -> max acc (abs x)) 0.0
        if m = 0.0 then 0 else Math.ILogB m

    /// xs · 2^-e, exact (magnitudes land in [0, 2)).
    let rescale (e: int) (xs: float[]) = xs |> Array.map (fun x -> Math.ScaleB(x, -e))

    let private meanOfScaled (ys: float[]) = Array.sum ys / float ys.Length

    /// Arithmetic mean; 0 for an empty group. Never overflows for finite input.
    let mean (xs: float[]) =
        if xs.Length = 0 then 0.0
        elif isConstant xs then xs[0]
        else
            let e = exponent xs
            Math.ScaleB(meanOfScaled (rescale e xs), e)

    /// Standard deviation of the rescaled values (shared by `std` and the scale-free normalisation).
    let internal stdOfScaled (kind: StdKind) (ys: float[]) =
        let n = ys.Length
        let dof = match kind with Sample -> n - 1 | Population -> n
        if dof <= 0 || isConstant ys then 0.0
        else
            let mu = meanOfScaled ys
            let ss = ys |> Array.sumBy (fun y -> (y - mu) * (y - mu))
            sqrt (ss / float dof)

    /// Standard deviation (sample: n − 1; population: n). 0 for a constant group, for G = 1, and for an empty group.
    let std (kind: StdKind) (xs: float[]) =
        if isConstant xs then 0.0
        else
            let e = exponent xs
            Math.ScaleB(stdOfScaled kind (rescale e xs), e)
