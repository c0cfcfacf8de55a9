namespace MMedExpert.Algebra.Rewards

open System

/// How much each perspective counts for a given sample: GBA form (a)'s sample-dependent weights.
/// weight_p = Base[p] (1 when absent) · BySpecialty[specialty][p] · ByQuestionType[questionType][p]
///            · (AnnotatedPerspectiveBoost when p is the sample's annotated perspective), then normalised to sum 1.
/// Names (perspective, specialty, question type) match case-insensitively.
type Weighting =
    { Base: Map<string, float>
      BySpecialty: Map<string, Map<string, float>>
      ByQuestionType: Map<string, Map<string, float>>
      AnnotatedPerspectiveBoost: float }

    /// Every perspective weighs the same for every sample.
    static member Uniform = { Base = Map.empty; BySpecialty = Map.empty; ByQuestionType = Map.empty; AnnotatedPerspectiveBoost = 1.0 }

module Weighting =

    let private find (key: string) (table: Map<string, 'v>) =
        table |> Map.tryFindKey (fun k _ -> String.Equals(k, key, StringComparison.OrdinalIgnoreCase)) |> Option.map (fun k -> table[k])

    let private factor (table: Map<string, Map<string, float>>) (key: string) (perspective: string) =
        find key table |> Option.bind (find perspective) |> Option.defaultValue 1.0

    /// The weights of the perspectives (in the order given) for one sample, summing to 1. ArgumentException when every
    /// weight is 0 for this sample.
    let resolve (weighting: Weighting) (perspectives: string[]) (a: Annotations) : float[] =
        let raw =
            perspectives |> Array.map (fun p ->
                let b = find p weighting.Base |> Option.defaultValue 1.0
                let boost = if String.Equals(p, a.Perspective, StringComparison.OrdinalIgnoreCase) then weighting.AnnotatedPerspectiveBoost else 1.0
                b * factor weighting.BySpecialty a.Specialty p * factor weighting.ByQuestionType a.QuestionType p * boost)
        let total = Array.sum raw
        if not (total > 0.0) || not (Double.IsFinite total) then
            invalidArg "weighting" (sprintf "the perspective weights for specialty '%s', question type '%s' sum to %g; they must sum to a positive number"
                                        a.Specialty a.QuestionType total)
        raw |> Array.map (fun w -> w / total)
