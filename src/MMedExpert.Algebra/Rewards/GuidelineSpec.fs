namespace MMedExpert.Algebra.Rewards

open System

/// A bad guideline spec: names the file (or "<spec>" for one built in code) and the field, e.g.
/// "specs/my.json: perspectives[1].checks[0].type: unknown check type 'formt' (known: format, answer, ...)".
type GuidelineSpecException(file: string, field: string, message: string, inner: exn) =
    inherit Exception(sprintf "%s: %s: %s" file field message, inner)
    new(file, field, message) = GuidelineSpecException(file, field, message, null)
    member _.File = file
    member _.Field = field

/// A clinical reasoning perspective: its guideline prompt (the instruction a multi-strategy rollout is sampled with) and
/// the weighted checks that score a completion from its point of view.
type Perspective =
    { Name: string
      Prompt: string
      Checks: WeightedCheck list }

/// Named perspectives and how to weigh them per sample. Evaluates a completion to one reward per perspective.
type GuidelineSpec =
    { Name: string
      Description: string
      Perspectives: Perspective list
      Weighting: Weighting }

/// A perspective's reward for one completion, with every check's score for the logs.
type PerspectiveScore =
    { Perspective: string
      /// Σ w_c · score_c / Σ w_c, in [0, 1].
      Reward: float
      Checks: (WeightedCheck * CheckResult) list }

/// A completion's rewards, one per perspective in spec order.
type SpecScore =
    { Rewards: float[]
      Breakdown: PerspectiveScore list }

module GuidelineSpec =

    let perspectiveNames (spec: GuidelineSpec) : string[] =
        spec.Perspectives |> List.map (fun p -> p.Name) |> Array.ofList

    /// Raises GuidelineSpecException (with `file` as the source name) for: no perspectives, empty or duplicate names,
    /// a perspective without checks, weights that are negative, non-finite or all zero, bad check parameters.
    let validate (file: string) (spec: GuidelineSpec) : unit =
        let fail field message = raise (GuidelineSpecException(file, field, message))
        if String.IsNullOrWhiteSpace spec.Name then fail "name" "the spec needs a name"
        if List.isEmpty spec.Perspectives then fail "perspectives" "the spec needs at least one perspective"
        spec.Perspectives |> List.iteri (fun i p ->
            let at = sprintf "perspectives[%d]" i
            if String.IsNullOrWhiteSpace p.Name then fail (at + ".name") "a perspective needs a name"
            if spec.Perspectives |> List.take i |> List.exists (fun q -> String.Equals(q.Name, p.Name, StringComparison.OrdinalIgnoreCase)) then
                fail (at + ".name") (sprintf "perspective '%s' appears twice" p.Name)
            if List.isEmpty p.Checks then fail (at + ".checks") (sprintf "perspective '%s' has no checks" p.Name)
            p.Checks |> List.iteri (fun j c ->
                let cat = sprintf "%s.checks[%d]" at j
                if not (Double.IsFinite c.Weight) || c.Weight < 0.0 then fail (cat + ".weight") (sprintf "weight must be finite and >= 0, got %g" c.Weight)
                match c.Check with
                | LengthBudget(_, maxLength, overflow) ->
                    if maxLength <= 0 then fail (cat + ".max") (sprintf "max must be > 0, got %d" maxLength)
                    if overflow < 0 then fail (cat + ".overflow") (sprintf "overflow must be >= 0, got %d" overflow)
                | ProbabilityUpdate(Some tol) when not (Double.IsFinite tol) || tol < 0.0 ->
                    fail (cat + ".pretestTolerance") (sprintf "must be finite and >= 0, got %g" tol)
                | StepOrder(Some [], _) -> fail (cat + ".steps") "an explicit step list must not be empty (omit it to use the sample's steps)"
                | StepOrder(Some steps, _) ->
                    steps |> List.iteri (fun k s ->
                        if s.Keywords |> List.forall (fun w -> TextMatch.normalizePhrase w = "") then
                            fail (sprintf "%s.steps[%d].keywords" cat k) (sprintf "step '%s' has no keyword with letters or digits" s.Name))
                | _ -> ())
            if p.Checks |> List.sumBy (fun c -> c.Weight) <= 0.0 then fail (at + ".checks") (sprintf "perspective '%s' has only zero weights" p.Name))
        let w = spec.Weighting
        let checkFactors field (table: Map<string, float>) =
            table |> Map.iter (fun k v -> if not (Double.IsFinite v) || v < 0.0 then fail (sprintf "%s.%s" field k) (sprintf "must be finite and >= 0, got %g" v))
        checkFactors "weighting.base" w.Base
        w.BySpecialty |> Map.iter (fun s t -> checkFactors (sprintf "weighting.bySpecialty.%s" s) t)
        w.ByQuestionType |> Map.iter (fun q t -> checkFactors (sprintf "weighting.byQuestionType.%s" q) t)
        if not (Double.IsFinite w.AnnotatedPerspectiveBoost) || w.AnnotatedPerspectiveBoost <= 0.0 then
            fail "weighting.annotatedPerspectiveBoost" (sprintf "must be finite and > 0, got %g" w.AnnotatedPerspectiveBoost)

    /// A perspective's reward: the weight-averaged check scores. Adding a check that scores 1 never lowers it.
    let evaluatePerspective (perspective: Perspective) (a: Annotations) (completion: Completion) (parsed: ParsedCompletion) : PerspectiveScore =
        let results = perspective.Checks |> List.map (fun c -> c, Check.evaluateParsed c.Check a completion parsed)
        let totalWeight = results |> List.sumBy (fun (c, _) -> c.Weight)
        let reward =
            if totalWeight <= 0.0 then 0.0
            else (results |> List.sumBy (fun (c, r) -> c.Weight * r.Score)) / totalWeight
        { Perspective = perspective.Name; Reward = reward; Checks = results }

    /// One reward per perspective (spec order) for one completion, with the per-check breakdown.
    let evaluate (spec: GuidelineSpec) (a: Annotations) (completion: Completion) : SpecScore =
        let parsed = TextMatch.parse completion.Text
        let breakdown = spec.Perspectives |> List.map (fun p -> evaluatePerspective p a completion parsed)
        { Rewards = breakdown |> List.map (fun b -> b.Reward) |> Array.ofList; Breakdown = breakdown }

    /// The perspective with this name (case-insensitive).
    let tryFindPerspective (name: string) (spec: GuidelineSpec) =
        spec.Perspectives |> List.tryFind (fun p -> String.Equals(p.Name, name, StringComparison.OrdinalIgnoreCase))
