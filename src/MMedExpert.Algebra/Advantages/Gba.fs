namespace MMedExpert.Algebra.Advantages

/// How multi-strategy GBA splits a group whose completions came from different guideline prompts (strategies).
type StrategySplit =
    { /// Weight of the between-strategy term. 1 reproduces the unsplit advantage exactly (when both terms are `center`);
      /// 0 compares each completion only with its own strategy's siblings.
      Lambda: float
      /// Estimator applied inside each strategy's subgroup.
      Within: float[] -> float[]
      /// Estimator applied to the vector of strategy means (each completion carrying its strategy's mean).
      Between: float[] -> float[] }

/// Options of the default GBA advantage (see paper/gba.md for why these defaults).
type GbaOptions =
    { /// Per-perspective group normalisation (GRPO's, with these options).
      PerPerspective: GrpoOptions
      /// λ of the between-strategy term; only matters when the group holds several strategies.
      Lambda: float }

    static member Default = { PerPerspective = GrpoOptions.Default; Lambda = 0.5 }

/// Guideline-Based Advantages in two composable forms (this project's reading of MMedExpert-R1; paper/gba.md):
///  (a) multi-perspective rewards: rewards[completion, perspective]; each perspective normalised within the group, then a
///      weighted combination whose weights may depend on the sample (specialty, question type);
///  (b) multi-strategy rollouts: the group split across guideline prompts; advantage = within-strategy term
///      + λ · between-strategy term.
/// The default composes them: `multiPerspective` gives one score per completion, `multiStrategy` splits it.
module Gba =

    /// Form (a): Σ_p weights[p] · perPerspective(rewards[*, p]). Linear in the weights; with one perspective and weight 1
    /// it is exactly `perPerspective` of that column.
    let multiPerspective (perPerspective: float[] -> float[]) (weights: float[]) (rewards: float[,]) : float[] =
        Estimators.multiRewardMatrix perPerspective weights rewards

    /// Form (a) with sample-dependent weights: `weightsOf sample` gives one weight per perspective column.
    let multiPerspectiveBy (weightsOf: 'sample -> float[]) (perPerspective: float[] -> float[]) (sample: 'sample) (rewards: float[,]) : float[] =
        multiPerspective perPerspective (weightsOf sample) rewards

    /// Form (b): Within(scores inside each strategy) + λ · Between(strategy means). `strategies[i]` is the guideline prompt
    /// (perspective index) completion i was sampled with.
    let multiStrategy (split: StrategySplit) (strategies: int[]) (scores: float[]) : float[] =
        Advantage.combine
            [| 1.0; split.Lambda |]
            [| Advantage.withinGroups strategies split.Within scores
               Advantage.betweenGroups strategies split.Between scores |]

    /// The default split: both terms are plain centring (the scores coming in are already normalised per perspective, and
    /// strategy subgroups are too small, often 2 completions, for a second std normalisation to be anything but noise).
    let centeredSplit (lambda: float) : StrategySplit =
        { Lambda = lambda; Within = Advantage.center; Between = Advantage.center }

    /// The default GBA advantage of one group: form (a) with GRPO normalisation per perspective and the given weights,
    /// then form (b) with `centeredSplit options.Lambda`. With a single strategy the split is skipped (it would be the
    /// identity up to rounding), so one perspective and one strategy give exactly GRPO.
    let advantages (options: GbaOptions) (weights: float[]) (strategies: int[]) (rewards: float[,]) : float[] =
        let scores = multiPerspective (Estimators.grpo options.PerPerspective) weights rewards
        if Array.length (Array.distinct strategies) <= 1 then
            if strategies.Length <> scores.Length then
                invalidArg "strategies" (sprintf "%d strategy labels for %d completions" strategies.Length scores.Length)
            scores
        else multiStrategy (centeredSplit options.Lambda) strategies scores
