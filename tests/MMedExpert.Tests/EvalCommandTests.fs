module MMedExpert.Tests.EvalCommandTests

open System.IO
open System.Text.Json
open Expecto
open MMedExpert.Tests.TestKit
open MMedExpert.Tests.TrainingCliTests

let private json (path: string) = JsonDocument.Parse(File.ReadAllText path).RootElement

[<Tests>]
let tests =
    testList "EvalCommand" [
        test "mmx eval runs a tiny model on a MedSynth split, writes results and predictions, resumes, and names bad input" {
            use dir = new TempDir()
            let data, baseDir = medSynthWithTinyBase dir
            let out = dir.File "eval"
            let args = [ "eval"; "--base"; baseDir; "--bench"; "medsynth"; "--data"; Path.Combine(data, "sft.jsonl"); "--out"; out
                         "--limit"; "6"; "--batch-size"; "3"; "--max-new-tokens"; "8" ]
            let code, _, err = runMmx args
            Expect.equal code 0 $"mmx eval: {err}"
            let results = json (Path.Combine(out, "results.json"))
            Expect.equal (results.GetProperty("n").GetInt32()) 6 "six items scored"
            let acc = results.GetProperty("accuracy").GetDouble()
            Expect.isTrue (acc >= 0.0 && acc <= 1.0) "accuracy in [0, 1]"
            Expect.isTrue (results.GetProperty("by_group").TryGetProperty("specialty") |> fst) "accuracy by specialty"
            Expect.equal (File.ReadAllLines(Path.Combine(out, "predictions.jsonl")).Length) 6 "one prediction per item"
            // Rerunning resumes: every item is already predicted.
            let code, _, err = runMmx args
            Expect.equal code 0 $"rerun: {err}"
            Expect.equal ((json (Path.Combine(out, "results.json"))).GetProperty("resumed").GetInt32()) 6 "all six resumed"
            let code, _, err = runMmx [ "eval"; "--base"; baseDir; "--bench"; "medsynth"; "--data"; dir.File "missing.jsonl"; "--out"; out ]
            Expect.equal code 2 "bad input exits 2"
            Expect.stringContains err "missing.jsonl" "names the file"
        }
    ]
