namespace MMedExpert.Algebra.Rewards

open System
open System.Collections.Generic

/// What the data layer knows about one sample, as the reward checks read it.
type Annotations =
    { /// The correct answer: an option letter ("B") or the option's text (or free text when there are no options).
      Answer: string
      /// Option letter → option text; empty for open questions.
      Options: Map<string, string>
      /// Findings a good answer mentions; alternatives of one finding separated by '|' ("ST elevation|STEMI").
      KeyFindings: string list
      /// The sample's guideline reasoning steps in order, each a group of alternative keywords
      /// (e.g. [["finding"; "shows"]; ["differential"]; ["biopsy"; "test"]; ["diagnosis"]]).
      GuidelineSteps: string list list
      /// Pre-test probability of the correct diagnosis in [0, 1], when the sample states one.
      PretestProbability: float option
      Specialty: string
      QuestionType: string
      /// The reasoning perspective the sample's trace follows (differential, intuitive, analytical, bayesian), or "".
      Perspective: string }

    /// An answer-only sample (no options, findings or steps): a starting point for `{ Annotations.Empty with ... }`.
    static member Empty =
        { Answer = ""; Options = Map.empty; KeyFindings = []; GuidelineSteps = []; PretestProbability = None
          Specialty = ""; QuestionType = ""; Perspective = "" }

    /// C#-friendly constructor for the data layer (nulls become empty values).
    static member Create
        (answer: string, options: IDictionary<string, string>, keyFindings: seq<string>, guidelineSteps: seq<seq<string>>,
         pretestProbability: Nullable<float>, specialty: string, questionType: string, perspective: string) =
        let orEmpty (s: string) = if isNull s then "" else s
        { Answer = orEmpty answer
          Options = if isNull options then Map.empty else options |> Seq.map (fun kv -> kv.Key, kv.Value) |> Map.ofSeq
          KeyFindings = if isNull keyFindings then [] else List.ofSeq keyFindings
          GuidelineSteps = if isNull guidelineSteps then [] else guidelineSteps |> Seq.map List.ofSeq |> List.ofSeq
          PretestProbability = if pretestProbability.HasValue then Some pretestProbability.Value else None
          Specialty = orEmpty specialty
          QuestionType = orEmpty questionType
          Perspective = orEmpty perspective }

/// One generated completion as the checks see it.
type Completion =
    { Text: string
      /// The number of generated tokens when the caller knows it (the trainer does); otherwise length budgets in tokens
      /// count words and punctuation marks as an approximation.
      TokenCount: int option }

    static member OfText(text: string) = { Text = (if isNull text then "" else text); TokenCount = None }
    static member OfTokens(text: string, tokenCount: int) = { Text = (if isNull text then "" else text); TokenCount = Some tokenCount }
