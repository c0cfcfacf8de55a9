namespace MMedExpert.Algebra.Advantages

open System

/// What a trainer knows about the G completions of one prompt when it asks for advantages.
type RolloutGroup =
    { /// rewards[completion, perspective], e.g. from GuidelineRewards.rewardMatrix.
      Rewards: float[,]
      /// One weight per perspective column for this sample (e.g. Weighting.resolve); scalar estimators use the
      /// weighted reward Σ_p w_p · rewards[i, p].
      Weights: float[]
      /// Guideline prompt (perspective index) each completion was sampled with; all equal when one prompt was used.
      Strategies: int[] }

/// The estimator a run uses (`--advantage gba|grpo|drgrpo|rloo|reinforce++|multireward`), or a researcher's own.
type Estimator =
    | Grpo of GrpoOptions
    | DrGrpo
    | Rloo
    | ReinforcePlusPlus of ReinforcePlusPlusOptions
    /// Normalise-then-sum over the perspective columns with the group's weights (GBA form (a) alone).
    | MultiReward of GrpoOptions
    | Gba of GbaOptions
    /// A group estimator defined elsewhere (e.g. in scripts/new-advantage.fsx), applied to the weighted scalar reward.
    | Custom of name: string * estimator: (float[] -> float[])

module Estimator =

    /// The names `parse` accepts.
    let names = [ "gba"; "grpo"; "drgrpo"; "rloo"; "reinforce++"; "multireward" ]

    /// The estimator of a name with default options; ArgumentException listing the known names otherwise.
    let parse (name: string) : Estimator =
        match (if isNull name then "" else name.Trim().ToLowerInvariant()) with
        | "gba" -> Gba GbaOptions.Default
        | "grpo" -> Grpo GrpoOptions.Default
        | "drgrpo" | "dr.grpo" | "dr-grpo" -> DrGrpo
        | "rloo" -> Rloo
        | "reinforce++" | "reinforcepp" | "reinforce-plus-plus" -> ReinforcePlusPlus ReinforcePlusPlusOptions.Default
        | "multireward" | "multi-reward" -> MultiReward GrpoOptions.Default
        | other -> invalidArg "name" (sprintf "unknown advantage estimator '%s' (known: %s)" other (String.Join(", ", names)))

    let name (estimator: Estimator) =
        match estimator with
        | Grpo _ -> "grpo"
        | DrGrpo -> "drgrpo"
        | Rloo -> "rloo"
        | ReinforcePlusPlus _ -> "reinforce++"
        | MultiReward _ -> "multireward"
        | Gba _ -> "gba"
        | Custom(n, _) -> n

    /// Raises ArgumentException naming the group and the mismatching dimension.
    let validate (index: int) (group: RolloutGroup) =
        let g, p = Array2D.length1 group.Rewards, Array2D.length2 group.Rewards
        if group.Weights.Length <> p then
            invalidArg "groups" (sprintf "group %d: %d weights for %d perspective columns" index group.Weights.Length p)
        if group.Strategies.Length <> g then
            invalidArg "groups" (sprintf "group %d: %d strategy labels for %d completions" index group.Strategies.Length g)
        for i in 0 .. g - 1 do
            for k in 0 .. p - 1 do
                if not (Double.IsFinite group.Rewards[i, k]) then
                    invalidArg "groups" (sprintf "group %d: reward[%d, %d] is %g: rewards must be finite" index i k group.Rewards[i, k])

    /// Σ_p w_p · rewards[i, p]: the scalar reward single-reward estimators see.
    let scalarRewards (group: RolloutGroup) : float[] =
        Array.init (Array2D.length1 group.Rewards) (fun i ->
            let mutable acc = 0.0
            for k in 0 .. group.Weights.Length - 1 do
                acc <- acc + group.Weights[k] * group.Rewards[i, k]
            acc)

    /// Advantages for a batch of groups (one array per group, in completion order).
    let apply (estimator: Estimator) (groups: RolloutGroup[]) : float[][] =
        groups |> Array.iteri validate
        let perScalar f = groups |> Array.map (scalarRewards >> f)
        match estimator with
        | Grpo options -> perScalar (Estimators.grpo options)
        | DrGrpo -> perScalar Estimators.drGrpo
        | Rloo -> perScalar Estimators.rloo
        | Custom(_, f) -> perScalar f
        | ReinforcePlusPlus options -> groups |> Array.map scalarRewards |> Estimators.reinforcePlusPlus options
        | MultiReward options ->
            groups |> Array.map (fun g -> Gba.multiPerspective (Estimators.grpo options) g.Weights g.Rewards)
        | Gba options -> groups |> Array.map (fun g -> Gba.advantages options g.Weights g.Strategies g.Rewards)
