namespace MMedExpert.Algebra.Rewards

open System

/// Combinators to write guideline specs in F# scripts:
/// <code>
///   open MMedExpert.Algebra.Rewards
///   open MMedExpert.Algebra.Rewards.Dsl
///   let spec =
///       guideline "my-spec" [
///           perspective "bayesian" [ check.format 0.2; check.answer 0.5; check.probabilityUpdate 0.3 ]
///           perspective "differential" [ check.format 0.2; check.answer 0.5
///                                        check.stepsInOrder 0.3 [ step "findings" [ "shows"; "reveals" ]
///                                                                 step "differential" [ "differential"; "versus" ] ] ]
///           |> withPrompt "List the differential before concluding." ]
///       |> withWeighting { Weighting.Uniform with AnnotatedPerspectiveBoost = 2.0 }
///   SpecJson.save "specs/my-spec.json" spec
/// </code>
module Dsl =

    /// A named perspective from weighted checks (no guideline prompt; add one with `withPrompt`).
    let perspective (name: string) (checks: WeightedCheck list) : Perspective =
        { Name = name; Prompt = ""; Checks = checks }

    let withPrompt (prompt: string) (p: Perspective) : Perspective = { p with Prompt = prompt }

    /// A spec with uniform perspective weights, validated (GuidelineSpecException for a bad one).
    let guideline (name: string) (perspectives: Perspective list) : GuidelineSpec =
        let spec = { Name = name; Description = ""; Perspectives = perspectives; Weighting = Weighting.Uniform }
        GuidelineSpec.validate "<script>" spec
        spec

    let withDescription (description: string) (spec: GuidelineSpec) = { spec with Description = description }
    let withWeighting (weighting: Weighting) (spec: GuidelineSpec) = { spec with Weighting = weighting }

    /// Adds the perspective, or replaces the one with the same name (case-insensitive), keeping its position.
    let withPerspective (p: Perspective) (spec: GuidelineSpec) : GuidelineSpec =
        let same (q: Perspective) = String.Equals(q.Name, p.Name, StringComparison.OrdinalIgnoreCase)
        if spec.Perspectives |> List.exists same then { spec with Perspectives = spec.Perspectives |> List.map (fun q -> if same q then p else q) }
        else { spec with Perspectives = spec.Perspectives @ [ p ] }

    /// Adds a check to the named perspective; GuidelineSpecException when there is none.
    let withCheck (perspectiveName: string) (c: WeightedCheck) (spec: GuidelineSpec) : GuidelineSpec =
        match GuidelineSpec.tryFindPerspective perspectiveName spec with
        | None -> raise (GuidelineSpecException("<script>", "perspectives", sprintf "no perspective named '%s'" perspectiveName))
        | Some p -> withPerspective { p with Checks = p.Checks @ [ c ] } spec

    /// A guideline step for `check.stepsInOrder`.
    let step (name: string) (keywords: string list) : GuidelineStep = { Name = name; Keywords = keywords }

    /// The checks, each taking its weight first: `check.format 0.2`.
    [<RequireQualifiedAccess>]
    module check =
        let private weighted w c : WeightedCheck = { Check = c; Weight = w }
        let format w = weighted w Format
        let answer w = weighted w (Answer false)
        let answerWithPartialCredit w = weighted w (Answer true)
        let keyFindings w = weighted w KeyFindings
        /// The sample's annotated guideline steps, in order (longest in-order prefix).
        let guidelineSteps w = weighted w (StepOrder(None, InOrderPrefix))
        /// The given steps, in order (longest in-order prefix).
        let stepsInOrder w (steps: GuidelineStep list) = weighted w (StepOrder(Some steps, InOrderPrefix))
        /// The given steps, scored by the longest subsequence mentioned in order.
        let stepsInOrderLis w (steps: GuidelineStep list) = weighted w (StepOrder(Some steps, LongestIncreasing))
        let probabilityUpdate w = weighted w (ProbabilityUpdate None)
        /// Also requires the stated pre-test probability within `tolerance` of the annotated one (when annotated).
        let probabilityUpdateWithin (tolerance: float) w = weighted w (ProbabilityUpdate(Some tolerance))
        /// At most `maxTokens` tokens; linear fall-off to 0 over `overflow` more.
        let maxTokens (maxTokens: int) (overflow: int) w = weighted w (LengthBudget(Tokens, maxTokens, overflow))
        let maxChars (maxChars: int) (overflow: int) w = weighted w (LengthBudget(Chars, maxChars, overflow))
