namespace MMedExpert.Algebra.Rewards

open System
open System.Text.RegularExpressions

/// One reasoning step of a guideline: a name (for logs) and alternative keywords that show the step was taken.
type GuidelineStep = { Name: string; Keywords: string list }

/// How the step-order check scores a completion.
type StepOrderScoring =
    /// The longest prefix of the steps found one after the other in the reasoning (any occurrence after the previous step's).
    | InOrderPrefix
    /// The longest subsequence of steps whose first mentions appear in guideline order (LIS), so one step out of place
    /// costs one step, not the rest of the chain.
    | LongestIncreasing

type LengthUnit =
    | Tokens
    | Chars

/// A check scores one completion in [0, 1] (1 = satisfied).
type Check =
    /// The whole completion is `<think>…</think><answer>…</answer>` (whitespace around the blocks allowed; both non-empty).
    | Format
    /// The answer names the correct option (letter or the option's text; free text when the sample has no options).
    /// With partial credit, naming k options including the correct one scores 1/k, and a free-text answer scores its
    /// word-overlap F1 with the reference.
    | Answer of partialCredit: bool
    /// Fraction of the sample's key findings mentioned anywhere in the completion (1 when the sample lists none).
    | KeyFindings
    /// Reasoning steps in guideline order: the steps given here, or (None) the sample's annotated GuidelineSteps.
    | StepOrder of steps: GuidelineStep list option * scoring: StepOrderScoring
    /// Explicit Bayesian update: half for a stated pre-test probability (within the tolerance of the sample's annotated
    /// one when both are given), half for a stated post-test probability or likelihood ratio.
    | ProbabilityUpdate of pretestTolerance: float option
    /// 1 up to `max` units; then falls linearly to 0 over `overflow` more units (0 = hard cut).
    | LengthBudget of unit: LengthUnit * max: int * overflow: int

/// A check and its weight inside a perspective.
type WeightedCheck = { Check: Check; Weight: float }

/// A check's score on one completion and a short note for the logs.
type CheckResult = { Score: float; Detail: string }

module Check =

    /// The check's type name, as written in spec JSON.
    let kind (check: Check) =
        match check with
        | Format -> "format"
        | Answer _ -> "answer"
        | KeyFindings -> "keyFindings"
        | StepOrder _ -> "stepOrder"
        | ProbabilityUpdate _ -> "probabilityUpdate"
        | LengthBudget _ -> "lengthBudget"

    /// All type names `kind` can return.
    let kinds = [ "format"; "answer"; "keyFindings"; "stepOrder"; "probabilityUpdate"; "lengthBudget" ]

    let private result score detail = { Score = score; Detail = detail }

    // ---- format ---------------------------------------------------------------------------------------------------

    let private format (parsed: ParsedCompletion) =
        if parsed.WellFormed then result 1.0 "well-formed" else result 0.0 "not <think>…</think><answer>…</answer>"

    // ---- answer ---------------------------------------------------------------------------------------------------

    let private keyOf (a: Annotations) (candidate: string) =
        let c = TextMatch.normalizePhrase candidate
        a.Options |> Map.tryFindKey (fun k _ -> TextMatch.normalizePhrase k = c)

    /// The option key the annotations mark as correct; ArgumentException when Answer names no option.
    let expectedOption (a: Annotations) : string =
        match keyOf a a.Answer with
        | Some k -> k
        | None ->
            let target = TextMatch.normalizePhrase a.Answer
            match a.Options |> Map.tryFindKey (fun _ text -> TextMatch.normalizePhrase text = target) with
            | Some k -> k
            | None ->
                invalidArg "annotations" (sprintf "annotations.Answer '%s' is neither an option key nor an option's text (options: %s)"
                                              a.Answer (String.Join(", ", a.Options |> Map.keys)))

    let private options = RegexOptions.CultureInvariant
    let private bareLetter = Regex(@"\A\s*[(\[]?(?<l>[A-Za-z])[)\]]?\s*\.?\s*\z", options)
    let private leadingLetter = Regex(@"\A\s*[(\[]?(?<l>[A-Z])[)\]]?\s*[.:)\-]", options)
    let private letterList = Regex(@"\A\s*[(\[]?(?<l>[A-Z])[)\]]?(?:\s*(?:,|and|&|/|or)\s*[(\[]?(?<l>[A-Z])[)\]]?)+\s*\.?\s*\z", options)
    let private cuedLetter =
        Regex(@"\b(?:option|choice|answer)\s*(?:is\s*)?:?\s*[(\[]?(?<l>[A-Za-z])[)\]]?(?=[\s.,;:)]|\z)", options ||| RegexOptions.IgnoreCase)

    /// The option keys an answer names: letters first ("B", "(B)", "B. …", "A and C", "option B"), else option texts
    /// found in the answer (keeping the longest where one option's text contains another's).
    let predictedOptions (a: Annotations) (answer: string) : string list =
        let lettersFrom (m: Match) = [ for c in m.Groups["l"].Captures -> c.Value ] |> List.choose (keyOf a)
        let tryPattern (r: Regex) = let m = r.Match answer in if m.Success then lettersFrom m else []
        let letters =
            [ bareLetter; letterList; leadingLetter; cuedLetter ]
            |> List.tryPick (fun r -> match tryPattern r with [] -> None | found -> Some found)
        match letters with
        | Some found -> List.distinct found
        | None ->
            let text = TextMatch.normalize answer
            let matched =
                a.Options
                |> Map.toList
                |> List.choose (fun (k, optionText) ->
                    let phrase = TextMatch.normalizePhrase optionText
                    if phrase <> "" && not (List.isEmpty (TextMatch.positions text phrase)) then Some(k, phrase) else None)
            matched
            |> List.filter (fun (_, p) ->
                not (matched |> List.exists (fun (_, q) -> q <> p && not (List.isEmpty (TextMatch.positions (" " + q + " ") p)))))
            |> List.map fst

    let private wordF1 (predicted: string) (reference: string) =
        let words (s: string) = (TextMatch.normalizePhrase s).Split(' ', StringSplitOptions.RemoveEmptyEntries) |> Set.ofArray
        let p, r = words predicted, words reference
        let common = Set.intersect p r |> Set.count |> float
        if common = 0.0 then 0.0
        else
            let precision, recall = common / float p.Count, common / float r.Count
            2.0 * precision * recall / (precision + recall)

    let private answer (partialCredit: bool) (a: Annotations) (parsed: ParsedCompletion) =
        match parsed.Answer with
        | None -> result 0.0 "no answer found"
        | Some given when a.Options.IsEmpty ->
            let reference = TextMatch.normalizePhrase a.Answer
            if reference = "" then invalidArg "annotations" "annotations.Answer is empty"
            if not (List.isEmpty (TextMatch.positions (TextMatch.normalize given) reference)) then result 1.0 "correct"
            elif partialCredit then
                let f1 = wordF1 given a.Answer
                result f1 (sprintf "word F1 %.2f" f1)
            else result 0.0 (sprintf "'%s' is not '%s'" given a.Answer)
        | Some given ->
            let expected = expectedOption a
            match predictedOptions a given with
            | [] -> result 0.0 "no option recognised"
            | [ one ] when one = expected -> result 1.0 (sprintf "correct (%s)" expected)
            | several when List.contains expected several ->
                if partialCredit then result (1.0 / float several.Length) (sprintf "hedged over %s" (String.Join(",", several)))
                else result 0.0 (sprintf "hedged over %s" (String.Join(",", several)))
            | wrong -> result 0.0 (sprintf "answered %s, expected %s" (String.Join(",", wrong)) expected)

    // ---- key findings -----------------------------------------------------------------------------------------------

    let private keyFindings (a: Annotations) (completion: Completion) =
        match a.KeyFindings with
        | [] -> result 1.0 "no key findings annotated"
        | findings ->
            let text = TextMatch.normalize completion.Text
            let found = findings |> List.filter (TextMatch.mentions text)
            result (float found.Length / float findings.Length) (sprintf "%d/%d findings" found.Length findings.Length)

    // ---- step order -------------------------------------------------------------------------------------------------

    let private stepPositions (text: string) (step: GuidelineStep) =
        step.Keywords
        |> List.collect (fun k -> k.Split('|') |> List.ofArray |> List.collect (TextMatch.normalizePhrase >> TextMatch.positions text))
        |> List.sort

    /// Length of the longest strictly increasing subsequence.
    let private longestIncreasing (xs: int list) =
        let arr = Array.ofList xs
        let best = Array.create arr.Length 1
        for i in 0 .. arr.Length - 1 do
            for j in 0 .. i - 1 do
                if arr[j] < arr[i] && best[j] + 1 > best[i] then best[i] <- best[j] + 1
        if arr.Length = 0 then 0 else Array.max best

    let private stepOrder (steps: GuidelineStep list option) (scoring: StepOrderScoring) (a: Annotations) (parsed: ParsedCompletion) =
        let steps =
            match steps with
            | Some s -> s
            | None -> a.GuidelineSteps |> List.mapi (fun i keywords -> { Name = sprintf "step %d" (i + 1); Keywords = keywords })
        match steps with
        | [] -> result 1.0 "no steps to follow"
        | _ ->
            let text = TextMatch.normalize parsed.Reasoning
            let positions = steps |> List.map (stepPositions text)
            let n = float steps.Length
            match scoring with
            | InOrderPrefix ->
                let rec walk cursor count = function
                    | [] -> count
                    | ps :: rest ->
                        match ps |> List.tryFind (fun p -> p > cursor) with
                        | Some p -> walk p (count + 1) rest
                        | None -> count
                let k = walk -1 0 positions
                result (float k / n) (sprintf "%d/%d steps in order" k steps.Length)
            | LongestIncreasing ->
                let firsts = positions |> List.choose List.tryHead
                let k = longestIncreasing firsts
                result (float k / n) (sprintf "%d/%d steps in order (%d mentioned)" k steps.Length firsts.Length)

    // ---- probability update -----------------------------------------------------------------------------------------

    let private ignoreCase = RegexOptions.IgnoreCase ||| RegexOptions.CultureInvariant
    let private pretestCue = Regex(@"pre[-\s]?test|prior\s+probability|\bprior\b|base\s*rate|baseline\s+(?:probability|risk)|prevalence", ignoreCase)
    let private posttestCue = Regex(@"post[-\s]?test|posterior|updated\s+probability|revised\s+probability", ignoreCase)
    let private ratioCue = Regex(@"likelihood\s+ratio|\blr\s*[+\-]|\blr\b", ignoreCase)
    let private percent = Regex(@"(?<![\d.])(?<v>\d{1,3}(?:\.\d+)?)\s*%", ignoreCase)
    let private fraction = Regex(@"(?<![\d.])(?<v>0?\.\d+)(?!\.?\d)", ignoreCase)
    let private number = Regex(@"(?<![\d.])(?<v>\d+(?:\.\d+)?)(?!\.?\d)", ignoreCase)

    let private parse (s: string) = Double.Parse(s, Globalization.CultureInfo.InvariantCulture)

    /// The value a cue states: the first number after it (within 60 characters, before the next cue of any kind), else
    /// the last number before it (within 40 characters, after the previous cue) as in "30% pre-test probability".
    let private stated (cues: Match list) (values: (int * float) list) (cue: Match) : float option =
        let cueEnd = cue.Index + cue.Length
        let nextCue = cues |> List.filter (fun c -> c.Index >= cueEnd) |> List.map (fun c -> c.Index) |> List.fold min Int32.MaxValue
        let previousCueEnd = cues |> List.filter (fun c -> c.Index + c.Length <= cue.Index) |> List.map (fun c -> c.Index + c.Length) |> List.fold max 0
        match values |> List.filter (fun (at, _) -> at >= cueEnd && at <= cueEnd + 60 && at < nextCue) |> List.sortBy fst with
        | (_, v) :: _ -> Some v
        | [] ->
            values
            |> List.filter (fun (at, _) -> at < cue.Index && at >= cue.Index - 40 && at >= previousCueEnd)
            |> List.sortBy fst
            |> List.tryLast
            |> Option.map snd

    let private probabilities (text: string) =
        [ for m in percent.Matches text do
              let v = parse m.Groups["v"].Value / 100.0
              if v <= 1.0 then yield m.Index, v
          for m in fraction.Matches text do
              yield m.Index, parse m.Groups["v"].Value ]

    let private positiveNumbers (text: string) =
        [ for m in number.Matches text do
              let v = parse m.Groups["v"].Value
              if v > 0.0 then yield m.Index, v ]

    let private probabilityUpdate (tolerance: float option) (a: Annotations) (completion: Completion) =
        let text = completion.Text
        let matches (r: Regex) = [ for m in r.Matches text -> m ]
        let pretestCues, posttestCues, ratioCues = matches pretestCue, matches posttestCue, matches ratioCue
        let allCues = pretestCues @ posttestCues @ ratioCues
        let statedBy cues values = cues |> List.choose (stated allCues values)
        let statedPretest = statedBy pretestCues (probabilities text)
        let pretestOk =
            match tolerance, a.PretestProbability with
            | Some tol, Some p0 -> statedPretest |> List.exists (fun p -> abs (p - p0) <= tol)
            | _ -> not statedPretest.IsEmpty
        let posttest = statedBy posttestCues (probabilities text)
        let ratios = statedBy ratioCues (positiveNumbers text)
        let updateOk = not posttest.IsEmpty || not ratios.IsEmpty
        let score = (if pretestOk then 0.5 else 0.0) + (if updateOk then 0.5 else 0.0)
        let pre = if pretestOk then "pre-test stated" elif statedPretest.IsEmpty then "no pre-test probability" else "pre-test off the annotated value"
        let post = if updateOk then "update stated" else "no post-test probability or likelihood ratio"
        result score (pre + ", " + post)

    // ---- length budget ----------------------------------------------------------------------------------------------

    let private lengthBudget (unit: LengthUnit) (maxLength: int) (overflow: int) (completion: Completion) =
        let length =
            match unit with
            | Chars -> completion.Text.Length
            | Tokens -> defaultArg completion.TokenCount (TextMatch.approximateTokens completion.Text)
        let unitName = match unit with Chars -> "chars" | Tokens -> "tokens"
        let score =
            if length <= maxLength then 1.0
            elif overflow <= 0 then 0.0
            else max 0.0 (1.0 - float (length - maxLength) / float overflow)
        result score (sprintf "%d/%d %s" length maxLength unitName)

    /// Scores one completion (already parsed with TextMatch.parse) against the sample's annotations.
    let evaluateParsed (check: Check) (a: Annotations) (completion: Completion) (parsed: ParsedCompletion) : CheckResult =
        match check with
        | Format -> format parsed
        | Answer partialCredit -> answer partialCredit a parsed
        | KeyFindings -> keyFindings a completion
        | StepOrder(steps, scoring) -> stepOrder steps scoring a parsed
        | ProbabilityUpdate tolerance -> probabilityUpdate tolerance a completion
        | LengthBudget(unit, maxLength, overflow) -> lengthBudget unit maxLength overflow completion

    /// Scores one completion against the sample's annotations.
    let evaluate (check: Check) (a: Annotations) (completion: Completion) : CheckResult =
        evaluateParsed check a completion (TextMatch.parse completion.Text)
