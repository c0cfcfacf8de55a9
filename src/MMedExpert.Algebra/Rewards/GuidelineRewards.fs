namespace MMedExpert.Algebra.Rewards

open System
open MMedExpert.Algebra.Advantages

/// The bridge a GRPO trainer calls: completions of one prompt → rewards per perspective → a RolloutGroup for
/// `Estimator.apply`.
/// <code>
///   let group, scores = GuidelineRewards.rolloutGroup spec annotations completions strategies
///   let advantages = Estimator.apply (Estimator.parse "gba") [| group |]
/// </code>
module GuidelineRewards =

    /// rewards[completion, perspective] and each completion's breakdown.
    let rewardMatrix (spec: GuidelineSpec) (a: Annotations) (completions: Completion[]) : float[,] * SpecScore[] =
        let scores = completions |> Array.map (GuidelineSpec.evaluate spec a)
        let p = spec.Perspectives.Length
        Array2D.init completions.Length p (fun i k -> scores[i].Rewards[k]), scores

    /// The index of a perspective (the strategy label of completions sampled with its guideline prompt);
    /// ArgumentException naming the known perspectives otherwise.
    let strategyIndex (spec: GuidelineSpec) (perspectiveName: string) : int =
        match spec.Perspectives |> List.tryFindIndex (fun p -> String.Equals(p.Name, perspectiveName, StringComparison.OrdinalIgnoreCase)) with
        | Some i -> i
        | None -> invalidArg "perspectiveName" (sprintf "no perspective '%s' in spec '%s' (known: %s)" perspectiveName spec.Name (String.Join(", ", GuidelineSpec.perspectiveNames spec)))

    /// A RolloutGroup for one prompt: rewards from the spec, weights from the spec's weighting for this sample, and the
    /// strategy (perspective index) each completion was sampled with (pass all zeros when one prompt was used).
    let rolloutGroup (spec: GuidelineSpec) (a: Annotations) (completions: Completion[]) (strategies: int[]) : RolloutGroup * SpecScore[] =
        if strategies.Length <> completions.Length then
            invalidArg "strategies" (sprintf "%d strategy labels for %d completions" strategies.Length completions.Length)
        let rewards, scores = rewardMatrix spec a completions
        { Rewards = rewards
          Weights = Weighting.resolve spec.Weighting (GuidelineSpec.perspectiveNames spec) a
          Strategies = strategies }, scores
