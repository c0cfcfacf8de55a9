namespace MMedExpert.Algebra.Advantages

open System

/// The building blocks of every advantage estimator. A group estimator is a plain function `float[] -> float[]` from the
/// rewards of the G completions of one prompt to their advantages; estimators are composed with `>>`.
///
/// A new estimator is a few lines, e.g.
/// <code>
///   let grpo       = Advantage.normalize Sample 1e-4                  // (r − mean) / (std + ε)
///   let drGrpo     = Advantage.center                                 // r − mean
///   let rloo       = Advantage.baseline Advantage.leaveOneOutMean     // r_i − mean of the others
///   let clippedZ   = Advantage.normalize Population 0.0 >> Advantage.clip -3.0 3.0
///   let rankBased  = Advantage.ranks >> Advantage.normalize Sample 0.0
///   let twoRewards = fun (acc: float[]) (fmt: float[]) ->
///                      Advantage.combine [| 0.8; 0.2 |] [| Advantage.normalize Sample 0.0 acc; Advantage.normalize Sample 0.0 fmt |]
/// </code>
/// Conventions every combinator keeps: a group with no spread (all rewards equal, or G = 1) carries no learning signal and
/// gets exact zeros; x / 0 is taken as 0, never NaN; all arithmetic is rescaled by powers of two so finite input whose range
/// (max − min) is finite gives finite output.
module Advantage =

    /// Runs f on the rewards multiplied exactly by a power of two (2^-e, so that max|r| lands in [1, 2)) and multiplies
    /// the result back by 2^e. Subnormal and huge rewards then get the same relative precision as rewards near 1.
    let inRescaledUnits (f: float[] -> float[]) (rewards: float[]) : float[] =
        let e = GroupStats.exponent rewards
        GroupStats.rescale e rewards |> f |> Array.map (fun a -> Math.ScaleB(a, e))

    /// Runs a scale-free estimator (its output has no units) on exactly rescaled rewards; `toUnits` converts a constant
    /// given in reward units (such as epsilon) into the rescaled units.
    let scaleFree (f: (float -> float) -> float[] -> float[]) (rewards: float[]) : float[] =
        let e = GroupStats.exponent rewards
        f (fun x -> Math.ScaleB(x, -e)) (GroupStats.rescale e rewards)

    let private centerScaled (ys: float[]) =
        let mu = Array.sum ys / float ys.Length
        let centered = ys |> Array.map (fun y -> y - mu)
        let residual = Array.sum centered / float centered.Length
        centered |> Array.map (fun c -> c - residual)

    /// r − mean(r), computed in rescaled units. A second pass subtracts the residual mean left by rounding, so the group
    /// sums to 0 to within a few ulps.
    let center (rewards: float[]) : float[] =
        GroupStats.validate rewards
        if GroupStats.isConstant rewards then Array.zeroCreate rewards.Length
        else inRescaledUnits centerScaled rewards

    /// r − b(r) for a per-element baseline function b (which must return one baseline per reward).
    /// A constant group gets zeros whatever the baseline: any sensible baseline of a constant group is that constant, and
    /// this keeps rounding (e.g. in (G·r − r)/(G − 1)) from inventing a signal.
    let baseline (b: float[] -> float[]) (rewards: float[]) : float[] =
        GroupStats.validate rewards
        if GroupStats.isConstant rewards then Array.zeroCreate rewards.Length
        else
            let bs = b rewards
            if bs.Length <> rewards.Length then
                invalidArg "b" (sprintf "the baseline returned %d values for a group of %d rewards" bs.Length rewards.Length)
            Array.map2 (fun r bi -> r - bi) rewards bs

    /// The group mean as a per-element baseline (so `baseline meanBaseline` equals `center` up to rounding).
    let meanBaseline (rewards: float[]) : float[] =
        Array.create rewards.Length (GroupStats.mean rewards)

    /// Leave-one-out baseline: for element i, the mean of the other G − 1 rewards, computed directly as (Σr − r_i)/(G − 1)
    /// (not via the identity with the group mean, so the RLOO law stays a real check). For G = 1 the baseline is the reward.
    let leaveOneOutMean (rewards: float[]) : float[] =
        let g = rewards.Length
        if g <= 1 then Array.copy rewards
        else
            let e = GroupStats.exponent rewards
            let ys = GroupStats.rescale e rewards
            let total = Array.sum ys
            ys |> Array.map (fun y -> Math.ScaleB((total - y) / float (g - 1), e))

    /// Divides by the group's own standard deviation plus epsilon (epsilon is in reward units).
    /// Zero spread with epsilon = 0 gives zeros (0/0 := 0). Scale-free inside, so it never overflows.
    let scaleByStd (kind: StdKind) (epsilon: float) (values: float[]) : float[] =
        GroupStats.validate values
        // +infinity is allowed: it is what a finite epsilon becomes in the rescaled units of a subnormal group (→ zeros).
        if not (epsilon >= 0.0) then invalidArg "epsilon" (sprintf "epsilon must be >= 0, got %g" epsilon)
        if Array.forall (fun v -> v = 0.0) values then Array.zeroCreate values.Length
        else
            let e = GroupStats.exponent values
            let ys = GroupStats.rescale e values
            let denominator = GroupStats.stdOfScaled kind ys + Math.ScaleB(epsilon, -e)
            if denominator = 0.0 then Array.zeroCreate values.Length
            else ys |> Array.map (fun y -> y / denominator)

    /// (r − mean) / (std + epsilon): GRPO's group normalisation, i.e. `center >> scaleByStd kind epsilon` run in rescaled
    /// units (so subnormal rewards keep their spread).
    let normalize (kind: StdKind) (epsilon: float) (rewards: float[]) : float[] =
        if not (Double.IsFinite epsilon) || epsilon < 0.0 then
            invalidArg "epsilon" (sprintf "epsilon must be finite and >= 0, got %g" epsilon)
        GroupStats.validate rewards
        rewards |> scaleFree (fun toUnits -> center >> scaleByStd kind (toUnits epsilon))

    /// Multiplies every advantage by a constant.
    let scale (factor: float) (values: float[]) : float[] =
        values |> Array.map (fun v -> v * factor)

    /// Clamps every advantage into [lo, hi] (e.g. to bound the update from an outlier reward).
    let clip (lo: float) (hi: float) (values: float[]) : float[] =
        if not (lo <= hi) then invalidArg "lo" (sprintf "clip needs lo <= hi, got [%g, %g]" lo hi)
        values |> Array.map (fun v -> max lo (min hi v))

    /// An estimator whose output is scaled by w: `weight 0.5 grpo` = half the GRPO advantage.
    let weight (w: float) (estimator: float[] -> float[]) : float[] -> float[] =
        estimator >> scale w

    /// Σ_k weights[k] · parts[k]: the weighted combination of several advantage vectors of the same group.
    /// Starts from the first term, so a single part with weight 1 is returned bit-for-bit.
    let combine (weights: float[]) (parts: float[][]) : float[] =
        if weights.Length <> parts.Length then
            invalidArg "weights" (sprintf "%d weights for %d advantage vectors" weights.Length parts.Length)
        if parts.Length = 0 then invalidArg "parts" "combine needs at least one advantage vector"
        let g = parts[0].Length
        parts |> Array.iteri (fun k p ->
            if p.Length <> g then invalidArg "parts" (sprintf "advantage vector %d has %d entries, vector 0 has %d" k p.Length g))
        Array.init g (fun i ->
            let mutable acc = weights[0] * parts[0][i]
            for k in 1 .. parts.Length - 1 do
                acc <- acc + weights[k] * parts[k][i]
            acc)

    /// Ranks within the group (average rank for ties, 0-based): a rank transform to build rank-based estimators.
    let ranks (rewards: float[]) : float[] =
        GroupStats.validate rewards
        let order = Array.init rewards.Length id |> Array.sortBy (fun i -> rewards[i])
        let result = Array.zeroCreate rewards.Length
        let mutable start = 0
        while start < order.Length do
            let mutable stop = start
            while stop + 1 < order.Length && rewards[order[stop + 1]] = rewards[order[start]] do
                stop <- stop + 1
            let average = float (start + stop) / 2.0
            for k in start .. stop do
                result[order[k]] <- average
            start <- stop + 1
        result

    /// Applies a group estimator separately inside each subgroup given by labels (label i = subgroup of element i);
    /// e.g. the within-strategy term of multi-strategy GBA.
    let withinGroups (labels: int[]) (estimator: float[] -> float[]) (values: float[]) : float[] =
        if labels.Length <> values.Length then
            invalidArg "labels" (sprintf "%d labels for %d values" labels.Length values.Length)
        let result = Array.zeroCreate values.Length
        for label in Array.distinct labels do
            let members = Array.init labels.Length id |> Array.filter (fun i -> labels[i] = label)
            let advantages = estimator (members |> Array.map (fun i -> values[i]))
            members |> Array.iteri (fun k i -> result[i] <- advantages[k])
        result

    /// Replaces each element by its subgroup's mean and applies a group estimator to that vector (length G, so subgroups
    /// count by their size); e.g. the between-strategy term of multi-strategy GBA. With `center`,
    /// withinGroups labels center v + betweenGroups labels center v = center v.
    let betweenGroups (labels: int[]) (estimator: float[] -> float[]) (values: float[]) : float[] =
        if labels.Length <> values.Length then
            invalidArg "labels" (sprintf "%d labels for %d values" labels.Length values.Length)
        let means =
            Array.distinct labels
            |> Array.map (fun label ->
                label, GroupStats.mean (Array.init labels.Length id |> Array.filter (fun i -> labels[i] = label) |> Array.map (fun i -> values[i])))
            |> dict
        estimator (labels |> Array.map (fun label -> means[label]))

    /// Lifts a group estimator to a batch of groups (one call per group).
    let perGroup (estimator: float[] -> float[]) (groups: float[][]) : float[][] =
        groups |> Array.map estimator

    /// Applies an estimator to the whole batch at once (all groups concatenated) and splits the result back into groups:
    /// the batch-level normalisation of REINFORCE++.
    let acrossBatch (estimator: float[] -> float[]) (groups: float[][]) : float[][] =
        let flat = Array.concat groups
        let advantages = estimator flat
        if advantages.Length <> flat.Length then
            invalidArg "estimator" (sprintf "the estimator returned %d values for a batch of %d rewards" advantages.Length flat.Length)
        let mutable offset = 0
        groups |> Array.map (fun g ->
            let part = Array.sub advantages offset g.Length
            offset <- offset + g.Length
            part)
