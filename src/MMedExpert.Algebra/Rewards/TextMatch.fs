namespace MMedExpert.Algebra.Rewards

open System
open System.Text
open System.Text.RegularExpressions

/// The parts of a completion in the `<think>…</think><answer>…</answer>` format.
type ParsedCompletion =
    { /// True when the whole text is exactly one think block then one answer block (whitespace around them allowed),
      /// both non-empty and neither containing another tag.
      WellFormed: bool
      /// The reasoning: the think block's content, or the whole text when there is no think block.
      Reasoning: string
      /// The final answer: the last answer block's content, else what follows the last "answer:" / "answer is".
      Answer: string option }

/// Text normalisation and phrase search shared by the checks: case-insensitive, punctuation-insensitive, whole words.
module TextMatch =

    /// Lower case, every run of characters other than letters and digits turned into one space, padded with a space on
    /// each side, so that " phrase " searches match whole words only.
    let normalize (text: string) : string =
        if String.IsNullOrEmpty text then " "
        else
            let sb = StringBuilder(text.Length + 2)
            sb.Append(' ') |> ignore
            let mutable lastSpace = true
            for c in text do
                if Char.IsLetterOrDigit c then
                    sb.Append(Char.ToLowerInvariant c) |> ignore
                    lastSpace <- false
                elif not lastSpace then
                    sb.Append(' ') |> ignore
                    lastSpace <- true
            if not lastSpace then sb.Append(' ') |> ignore
            sb.ToString()

    /// The phrase normalised without padding ("" for a phrase with no letters or digits).
    let normalizePhrase (phrase: string) = (normalize phrase).Trim()

    /// Start positions of a phrase (already normalised, non-empty) in a normalised text, as whole words.
    let positions (normalizedText: string) (normalizedPhrase: string) : int list =
        if normalizedPhrase = "" then []
        else
            let needle = " " + normalizedPhrase + " "
            let rec loop (from: int) acc =
                match normalizedText.IndexOf(needle, from, StringComparison.Ordinal) with
                | -1 -> List.rev acc
                | i -> loop (i + 1) (i :: acc)
            loop 0 []

    /// Whether any '|'-separated alternative of the phrase occurs in the normalised text.
    let mentions (normalizedText: string) (phraseWithAlternatives: string) : bool =
        phraseWithAlternatives.Split('|')
        |> Array.exists (fun alt -> not (List.isEmpty (positions normalizedText (normalizePhrase alt))))

    let private wellFormed =
        Regex(@"\A\s*<think>(?<think>(?:(?!</?think>|</?answer>).)*)</think>\s*<answer>(?<answer>(?:(?!</?think>|</?answer>).)*)</answer>\s*\z",
              RegexOptions.Singleline ||| RegexOptions.CultureInvariant)
    let private thinkBlock = Regex(@"<think>(?<think>.*?)</think>", RegexOptions.Singleline ||| RegexOptions.CultureInvariant)
    let private answerBlock = Regex(@"<answer>(?<answer>.*?)</answer>", RegexOptions.Singleline ||| RegexOptions.CultureInvariant)
    let private answerCue =
        Regex(@"(?:final\s+answer|answer)\s*(?:is|:)\s*(?<answer>[^\n]*)", RegexOptions.IgnoreCase ||| RegexOptions.CultureInvariant)

    /// Splits a completion into reasoning and answer (lenient: the format check is what rewards the exact format).
    let parse (text: string) : ParsedCompletion =
        let text = if isNull text then "" else text
        let strict = wellFormed.Match text
        if strict.Success
           && not (String.IsNullOrWhiteSpace strict.Groups["think"].Value)
           && not (String.IsNullOrWhiteSpace strict.Groups["answer"].Value) then
            { WellFormed = true; Reasoning = strict.Groups["think"].Value; Answer = Some (strict.Groups["answer"].Value.Trim()) }
        else
            let think = thinkBlock.Match text
            let answers = answerBlock.Matches text
            let answer =
                if answers.Count > 0 then Some (answers[answers.Count - 1].Groups["answer"].Value.Trim())
                else
                    let cues = answerCue.Matches text
                    if cues.Count > 0 then Some (cues[cues.Count - 1].Groups["answer"].Value.Trim()) else None
            { WellFormed = false
              Reasoning = (if think.Success then think.Groups["think"].Value else text)
              Answer = answer |> Option.filter (String.IsNullOrWhiteSpace >> not) }

    let private tokenPattern = Regex(@"\w+|[^\w\s]", RegexOptions.CultureInvariant)

    /// Words and punctuation marks: the token count used when the caller did not give the real one.
    let approximateTokens (text: string) = if String.IsNullOrEmpty text then 0 else tokenPattern.Matches(text).Count
