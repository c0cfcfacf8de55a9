// Where a model's MedSynth reasoning breaks: reads the compact traces a run's models wrote on the test split and scores
// each step of the guideline on its own, so "accuracy at chance" can be traced to the step that fails:
//
//   parsed      the output names its key findings ("Key findings: a; b; c; d.")
//   findings    the two image findings / the two clinical findings named correctly (a 2-valued finding: 50 % by chance
//               each, 25 % for both)
//   pairings    each pairing's concordant/discordant word right; and consistent with the model's OWN findings (the XOR)
//   conclusion  the diagnosis right; and the one the decision table gives for the model's OWN pairings (the lookup)
//   answer      the answer extracted by the evaluation (what the accuracy counts)
//
//   dotnet fsi scripts/trace-skills.fsx RUN_DIR                    (runs/<name>: reads data/<eval.split>.jsonl, eval/*/predictions.jsonl)
//   dotnet fsi scripts/trace-skills.fsx --reference DATA_DIR       (scores the items' own compact traces: every step 100 %)
//
// Only compact traces (the pipeline's default, MedItemSamples.CompactTrace) of MedSynth items are read.
#load "References.fsx"

open System
open System.IO
open System.Text.Json
open System.Text.RegularExpressions
open References
open MMedExpert.Data.Schema
open MMedExpert.Data.MedSynth

let usage () =
    eprintfn "usage: dotnet fsi scripts/trace-skills.fsx RUN_DIR | --reference DATA_DIR"
    exit 2

// Each step is parsed on its own, so a model that writes only some of them (the pretrained base writes the findings and
// an answer, no pairings) is scored on the steps it writes.
// "Pairings: discordant, concordant." (the compact trace) or "Pairings: i1 with c1, discordant; i2 with c2, concordant."
// (each verdict after its two findings, tried in paper/learnability sections 10 and 14)
let pairings = Regex(@"Pairings: (?:[^,;.]*? with [^,;.]*?, )?(?<p1>concordant|discordant)[,;] (?:[^,;.]*? with [^,;.]*?, )?(?<p2>concordant|discordant)\.")
// "Conclusion: X.</think>" (older compact traces) or "Conclusion:</think><answer>X</answer>" (the diagnosis written once)
let conclusion = Regex(@"Conclusion:(?: (?<c>.*?)\.</think>|</think><answer>(?<c>.*?)</answer>)")

type Scores = { Parsed: bool; Image: bool; Clinical: bool; Pairings: bool; PairingsFromOwn: bool; Conclusion: bool; ConclusionFromOwn: bool; Answer: bool }

/// Scores one output against its item. Findings are read by FindingReadout (the library's reading, also used by
/// `mmx pretrain`); a finding named other than the item's counts as the finding's other value.
let score (item: MedItem) (output: string) (answerCorrect: bool) =
    let sc = Scenario.For item.Specialty
    let struct (d1, d2) = (MedItemSamples.MedSynthPairings item).Value
    let truthFindings = MedItemSamples.CompactFindings item
    let i1, i2 = truthFindings[0] = sc.First.Image.WhenTrue, truthFindings[1] = sc.Second.Image.WhenTrue
    let truth = [| i1; i2; i1 <> d1; i2 <> d2 |]            // image 1, image 2, clinical 1, clinical 2
    let right = FindingReadout.Score(item, output) |> Seq.map (fun struct (_, ok) -> ok) |> Seq.toArray
    let own k = if right[k] then truth[k] else not truth[k]
    let p = pairings.Match output
    let p1, p2 = p.Success && p.Groups["p1"].Value = "discordant", p.Success && p.Groups["p2"].Value = "discordant"
    let c = conclusion.Match output
    { Parsed = not (isNull (FindingReadout.Named output))
      Image = right[0] && right[1]
      Clinical = right[2] && right[3]
      Pairings = p.Success && p1 = d1 && p2 = d2
      PairingsFromOwn = p.Success && p1 = (own 0 <> own 2) && p2 = (own 1 <> own 3)
      Conclusion = c.Success && c.Groups["c"].Value = item.AnswerText
      ConclusionFromOwn = c.Success && p.Success && c.Groups["c"].Value = sc.Diagnoses[Scenario.DiagnosisIndex(p1, p2)]
      Answer = answerCorrect }

let report (name: string) (scored: Scores list) =
    // Count, then divide once, and round halves away from zero as the report does ("0.0"; "%.1f" rounds them to even):
    // 77 of 400 is 19.25, which the report prints 19.3.
    let pct f =
        let v = 100.0 * float (scored |> List.filter f |> List.length) / float scored.Length
        v.ToString("0.0", System.Globalization.CultureInfo.InvariantCulture)
    printfn "%-32s %5d %7s %7s %8s %9s %8s %9s %8s %7s" name scored.Length
        (pct _.Parsed) (pct _.Image) (pct _.Clinical) (pct _.Pairings) (pct _.PairingsFromOwn) (pct _.Conclusion) (pct _.ConclusionFromOwn) (pct _.Answer)

let header () =
    printfn "%-32s %5s %7s %7s %8s %9s %8s %9s %8s %7s" "model" "n" "parsed" "image" "clinical" "pairings" "xor(own)" "diagnosis" "table(own)" "answer"

let load (path: string) = (MedItemLoader.Load(path, false)).Items |> Seq.map (fun i -> i.Id, i) |> Map.ofSeq

match scriptArgs with
| [| "--reference"; dataDir |] ->
    let items = load (Path.Combine(dataDir, "test.jsonl"))
    let scored = [ for KeyValue(_, item) in items -> score item (MedItemSamples.CompactTrace item) true ]
    header ()
    report "reference compact traces" scored
    let s = scored |> List.forall (fun s -> s.Parsed && s.Image && s.Clinical && s.Pairings && s.PairingsFromOwn && s.Conclusion && s.ConclusionFromOwn)
    if not s then eprintfn "the reference traces do not score 100 %% on every step: the parser and the generator disagree"; exit 1
| [| runDir |] ->
    // the split the run scored (eval.split in its config.json: test, or val for a run that chose a configuration)
    let split =
        let cfg = Path.Combine(runDir, "config.json")
        if not (File.Exists cfg) then "test" else
            match JsonDocument.Parse(File.ReadAllText cfg).RootElement.TryGetProperty("eval") with
            | true, e -> (match e.TryGetProperty("split") with | true, s -> s.GetString() | _ -> "test")
            | _ -> "test"
    let items = load (Path.Combine(runDir, "data", split + ".jsonl"))
    let evalDir = Path.Combine(runDir, "eval")
    if not (Directory.Exists evalDir) then failwithf "%s: no eval/ folder (run the pipeline's eval stage first)" runDir
    header ()
    for dir in Directory.GetDirectories evalDir |> Array.sort do
        let file = Path.Combine(dir, "predictions.jsonl")
        if File.Exists file then
            let scored =
                [ for line in File.ReadLines file do
                    if not (String.IsNullOrWhiteSpace line) then
                        let p = JsonDocument.Parse(line).RootElement
                        let id = p.GetProperty("id").GetString()
                        match items.TryFind id with
                        | Some item -> score item (p.GetProperty("output").GetString()) (p.GetProperty("correct").GetBoolean())
                        | None -> failwithf "%s: id %s is not in %s/data/%s.jsonl" file id runDir split ]
            report (Path.GetFileName dir) scored
| _ -> usage ()
