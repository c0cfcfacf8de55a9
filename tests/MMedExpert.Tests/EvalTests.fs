module MMedExpert.Tests.EvalTests

open System
open System.IO
open System.Text.Json
open Expecto
open FsCheck
open MMedExpert.Algebra.Metrics
open MMedExpert.Data
open MMedExpert.Data.Benchmarks
open MMedExpert.Data.Eval

let private options =
    readOnlyDict [ "A", "Lobar pneumonia"; "B", "Aspiration pneumonia"; "C", "Pulmonary metastases"; "D", "Hepatitis B" ]

let private extract s = AnswerExtractor.Extract(s, options)

let private letterOf s = (extract s).Letter

let private bootstrap = { Resamples = 1000; Seed = 42UL; Level = 0.95 }

let private item (i: int) =
    let groups = readOnlyDict [ GroupKeys.Specialty, (if i % 2 = 0 then "even" else "odd"); GroupKeys.Modality, "X-ray" ]
    EvalItem($"q{i}", $"Question {i}?", options, (if i % 3 = 0 then "A" else "C"), [||], "fake", groups)

let private items n = [ for i in 0 .. n - 1 -> item i ] |> List.toArray

let private tempDir () = Directory.CreateTempSubdirectory("mmx-eval").FullName

let private quiet = EvalOptions(Progress = ProgressMode.None, CheckpointSeconds = 0.0, Bootstrap = bootstrap)

/// Answers correctly (strict format) on even indices, with free text on odd ones.
let private fake (batch: Collections.Generic.IReadOnlyList<EvalItem>) : Collections.Generic.IReadOnlyList<string> =
    [| for it in batch ->
        let i = int (it.Id.Substring 1)
        if i % 2 = 0 then $"<think>reasoning</think><answer>{it.Answer}</answer>" else "I am not sure." |] :> _

[<Tests>]
let tests =
    testList "Eval" [
        testList "extraction" [
            test "answer tag, lowercase and bracketed letters inside it" {
                Expect.equal (extract "<think>x</think><answer>B</answer>") (Extraction("B", ExtractionMethod.AnswerTag, true)) "plain"
                Expect.equal (letterOf "<think>x</think><answer>b</answer>") "B" "lowercase"
                Expect.equal (letterOf "<answer>(C)</answer>") "C" "bracketed"
                Expect.equal (letterOf "<answer>Answer: D</answer>") "D" "answer: inside the tag"
                Expect.equal (letterOf "<think>x</think><answer>Pulmonary metastases</answer>") "C" "option text in the tag"
                Expect.isFalse (extract "<answer>B</answer>").StrictFormat "no think block: not strict"
                Expect.isFalse (extract "<think>x</think><answer>B</answer> extra").StrictFormat "trailing text: not strict"
            }

            test "several letters are ambiguous" {
                Expect.isNull (letterOf "<think>x</think><answer>A, C</answer>") "A, C in the tag"
                Expect.isNull (letterOf "Answer: A, C") "A, C stated"
                Expect.isNull (letterOf "B or C") "B or C"
                Expect.isNull (letterOf "(A) and (C) are both possible") "two bracketed"
                Expect.equal (extract "<answer>A or B</answer>").Method ExtractionMethod.None "no method when ambiguous"
            }

            test "a letter only inside the reasoning is not an answer" {
                Expect.isNull (letterOf "<think>The answer is B.</think>") "closed think, nothing after"
                Expect.isNull (letterOf "<think>Probably B, the answer is (B)") "unclosed think"
                Expect.equal (letterOf "<think>B is tempting</think> Final answer: D") "D" "the visible part counts"
            }

            test "visible letter forms: (B), B., Answer: B, the answer is (d)" {
                for s, l in [ "(B)", "B"; "B.", "B"; "b", "B"; "Answer: B", "B"; "answer: b", "B"
                              "The answer is (d).", "D"; "B. Aspiration pneumonia", "B"; "C) Pulmonary metastases", "C"
                              "A is unlikely. Final answer: C", "C"; "The best option is B because of the history.", "B" ] do
                    let x = extract s
                    Expect.equal x.Letter l s
                    Expect.equal x.Method ExtractionMethod.LoneLetter s
            }

            test "option text only; longer option wins; articles and letters inside option names are not answers" {
                Expect.equal (extract "Lobar pneumonia").Letter "A" "text"
                Expect.equal (extract "Lobar pneumonia").Method ExtractionMethod.OptionText "method"
                Expect.equal (letterOf "Most likely aspiration pneumonia.") "B" "'pneumonia' options: the longer match"
                Expect.equal (letterOf "A chest film suggests pulmonary metastases") "C" "'A' as an article"
                Expect.equal (letterOf "The answer is a lobar pneumonia") "A" "'a' as an article, then the text"
                Expect.equal (letterOf "This is hepatitis B") "D" "the B of 'Hepatitis B' is part of the option"
                Expect.isNull (letterOf "Lobar pneumonia or pulmonary metastases") "two options named"
            }

            test "nothing, a letter not among the options, or empty output" {
                Expect.equal (extract "") (Extraction(null, ExtractionMethod.None, false)) "empty"
                Expect.isNull (letterOf "E") "E is not an option"
                Expect.isNull (letterOf "I cannot tell.") "no answer"
            }

            test "the prompt lists the options unless the question already does" {
                let it = item 0
                let p = EvalPrompt.UserText it
                Expect.stringContains p "A. Lobar pneumonia" "options listed"
                Expect.stringContains p "<answer></answer>" "format instruction"
                let p2 = EvalPrompt.UserText(EvalItem(it.Id, it.Question, it.Options, it.Answer, it.ImagePaths, it.Benchmark, it.Groups, true))
                Expect.isFalse (p2.Contains "A. Lobar pneumonia") "not listed twice"
            }
        ]

        testList "metrics" [
            test "accuracy and rates by hand" {
                Expect.equal (Scoring.accuracy [| true; false; true; true |]) 0.75 "3/4"
                Expect.equal (Scoring.rate [| false; false; true |]) (1.0 / 3.0) "1/3"
                Expect.throwsT<ArgumentException> (fun () -> Scoring.accuracy [||] |> ignore) "empty refused"
            }

            test "quantiles interpolate between order statistics (type 7)" {
                let xs = [| 1.0; 2.0; 3.0; 4.0 |]
                Expect.equal (Scoring.quantile xs 0.5) 2.5 "median"
                Expect.equal (Scoring.quantile xs 0.25) 1.75 "h = 0.75"
                Expect.equal (Scoring.quantile xs 0.0) 1.0 "min"
                Expect.equal (Scoring.quantile xs 1.0) 4.0 "max"
                let iv = Scoring.percentileInterval 0.5 [| 10.0; 0.0; 5.0; 2.5; 7.5 |]
                Expect.equal iv { Low = 2.5; High = 7.5 } "central 50% of 0, 2.5, 5, 7.5, 10"
            }

            test "SplitMix64 matches the reference sequence" {
                let struct (a, s1) = SplitMix64.next 0UL
                let struct (b, _) = SplitMix64.next s1
                Expect.equal a 0xE220A8397B1DCDAFUL "first output for seed 0"
                Expect.equal b 0x6E789E6AA1B965F4UL "second output"
            }

            test "bootstrap: degenerate samples, two items, determinism" {
                Expect.equal (Scoring.bootstrapCi bootstrap (Array.create 30 true)) { Low = 1.0; High = 1.0 } "all correct"
                Expect.equal (Scoring.bootstrapCi bootstrap (Array.create 30 false)) { Low = 0.0; High = 0.0 } "all wrong"
                // n = 2, one right: resampled accuracy is 0, 0.5 or 1 with probabilities 1/4, 1/2, 1/4 → 2.5% and 97.5% quantiles 0 and 1.
                Expect.equal (Scoring.bootstrapCi bootstrap [| true; false |]) { Low = 0.0; High = 1.0 } "two items"
                let xs = Array.init 50 (fun i -> i % 3 = 0)
                Expect.equal (Scoring.bootstrapCi bootstrap xs) (Scoring.bootstrapCi bootstrap xs) "same seed, same interval"
                Expect.notEqual (Scoring.bootstrapAccuracies bootstrap xs) (Scoring.bootstrapAccuracies { bootstrap with Seed = 43UL } xs) "another seed"
            }

            test "bootstrap width matches the normal approximation for n = 400, p = 0.5" {
                let xs = Array.init 400 (fun i -> i % 2 = 0)
                let iv = Scoring.bootstrapCi bootstrap xs
                let expected = 2.0 * 1.96 * sqrt (0.25 / 400.0)   // 0.098
                Expect.floatClose { absolute = 0.015; relative = 0.0 } (iv.High - iv.Low) expected "width"
                Expect.floatClose { absolute = 0.015; relative = 0.0 } ((iv.High + iv.Low) / 2.0) 0.5 "centre"
            }

            test "grouping by hand" {
                let groups = [| "x"; "y"; "x"; "y"; "x" |]
                let correct = [| true; false; false; false; true |]
                let gs = Scoring.byGroup bootstrap groups correct
                Expect.equal (gs |> Array.map (fun g -> g.Group, g.Score.N, g.Score.Correct)) [| "x", 3, 2; "y", 2, 0 |] "counts"
                Expect.equal gs[0].Score.Accuracy (2.0 / 3.0) "x accuracy"
                Expect.equal gs[1].Score.Ci { Low = 0.0; High = 0.0 } "y interval"
            }

            testProperty "bootstrap interval is ordered and inside [0, 1]" <| fun (xs: bool[]) (seed: uint64) ->
                xs.Length = 0 || (let iv = Scoring.bootstrapCi { Resamples = 50; Seed = seed; Level = 0.9 } xs
                                  0.0 <= iv.Low && iv.Low <= iv.High && iv.High <= 1.0)

            testProperty "group counts add up to the whole" <| fun (pairs: (bool * bool)[]) ->
                let groups = pairs |> Array.map (fun (g, _) -> if g then "g1" else "g2")
                let correct = pairs |> Array.map snd
                pairs.Length = 0
                || (let gs = Scoring.byGroup { Resamples = 5; Seed = 1UL; Level = 0.9 } groups correct
                    Array.sumBy (fun g -> g.Score.N) gs = pairs.Length
                    && Array.sumBy (fun g -> g.Score.Correct) gs = (correct |> Array.filter id |> Array.length))
        ]

        testList "harness" [
            test "a fake generator: accuracy, invalid format, groups, files, batches" {
                let out = tempDir ()
                let seen = Collections.Generic.List<int>()
                let gen (b: Collections.Generic.IReadOnlyList<EvalItem>) = seen.Add b.Count; fake b
                let r = EvalHarness.Run(items 10, gen, out, 4, quiet)
                Expect.sequenceEqual seen [ 4; 4; 2 ] "batches of at most 4"
                Expect.equal r.Overall.N 10 "n"
                Expect.equal r.Overall.Correct 5 "even indices correct"
                Expect.equal r.InvalidFormatRate 0.5 "odd outputs are not in the format"
                Expect.equal r.NoAnswerRate 0.5 "odd outputs have no answer"
                let bySpecialty = r.ByGroup[GroupKeys.Specialty] |> Array.map (fun g -> g.Group, g.Score.Accuracy)
                Expect.equal bySpecialty [| "even", 1.0; "odd", 0.0 |] "by group"
                let lines = File.ReadAllLines(Path.Combine(out, EvalHarness.PredictionsFile))
                Expect.equal lines.Length 10 "one prediction per item"
                use doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(out, EvalHarness.ResultsFile)))
                Expect.equal (doc.RootElement.GetProperty("accuracy").GetDouble()) 0.5 "results.json accuracy"
                Expect.equal (doc.RootElement.GetProperty("by_group").GetProperty("modality").GetProperty("X-ray").GetProperty("n").GetInt32()) 10 "results.json groups"
                Expect.equal (doc.RootElement.GetProperty("extraction").GetProperty("answer_tag").GetInt32()) 5 "extraction counts"
            }

            test "resume: a crashed run continues where it stopped and ends with the same results" {
                let out = tempDir ()
                let mutable calls = 0
                let crashing b =
                    calls <- calls + 1
                    if calls = 3 then failwith "simulated crash" else fake b
                Expect.throws (fun () -> EvalHarness.Run(items 10, crashing, out, 3, quiet) |> ignore) "crash on the third batch"
                Expect.equal (File.ReadAllLines(Path.Combine(out, EvalHarness.PredictionsFile)).Length) 6 "two batches kept"
                let asked = Collections.Generic.List<string>()
                let counting (b: Collections.Generic.IReadOnlyList<EvalItem>) = (for i in b do asked.Add i.Id); fake b
                let r = EvalHarness.Run(items 10, counting, out, 3, quiet)
                Expect.sequenceEqual asked [ "q6"; "q7"; "q8"; "q9" ] "only the missing items are generated"
                Expect.equal r.Resumed 6 "resumed count"
                let fresh = EvalHarness.Run(items 10, fake, tempDir (), 3, quiet)
                Expect.equal r.Overall fresh.Overall "same score as an uninterrupted run"
                let again = EvalHarness.Run(items 10, (fun _ -> failwith "nothing left to generate"), out, 3, quiet)
                Expect.equal again.Resumed 10 "a finished run is not regenerated"
            }

            test "resume refuses predictions of other data, naming file:line" {
                let out = tempDir ()
                EvalHarness.Run(items 4, fake, out, 2, quiet) |> ignore
                let changed = items 4 |> Array.map (fun i -> if i.Id = "q1" then EvalItem(i.Id, i.Question, i.Options, "A", i.ImagePaths, i.Benchmark, i.Groups) else i)
                try
                    EvalHarness.Run(changed, fake, out, 2, quiet) |> ignore
                    failtest "expected a DataException"
                with :? DataException as e ->
                    Expect.stringContains e.Message $"{EvalHarness.PredictionsFile}:2: item 'q1' has gold answer 'C'" e.Message
            }

            test "a generator returning the wrong number of outputs is an error" {
                Expect.throwsT<MMedExpert.Core.MmxException> (fun () ->
                    EvalHarness.Run(items 4, (fun _ -> [| "A" |] :> _), tempDir (), 2, quiet) |> ignore) "count mismatch"
            }
        ]
    ]
