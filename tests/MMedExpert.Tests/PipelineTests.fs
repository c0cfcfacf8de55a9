/// The whole method end to end at test size: `mmx pipeline` on a tiny MedSynth set and the `tiny` preset, every stage
/// (data → tokenizer → base with the vision warm-up → DSA → GBA and GRPO → the three merges → eval → report), then the
/// resume rules: a rerun skips every stage after checking its outputs, a changed output reruns its stage and everything
/// after it, and --from reruns from the named stage.
module MMedExpert.Tests.PipelineTests

open System.IO
open System.Text.Json.Nodes
open Expecto
open MMedExpert.Tests.TestKit

let private config =
    """{
  "name": "tiny",
  "jobs": 2,
  "data": { "items": 64, "image_size": 56 },
  "base": { "source": "scratch", "preset": "tiny", "tokenizer_vocab": 500, "vision_warmup_steps": 3, "vision_warmup_batch_size": 4,
            "pretrain_steps": 3, "batch_size": 4 },
  "dsa": { "specialties": [ "adult_medicine", "pediatrics" ], "inits": [ "gaussian", "pissa" ], "steps": 2, "batch_size": 2 },
  "gba": { "steps": 1, "prompts_per_step": 2, "group_size": 2, "max_new_tokens": 12, "seeds": 2 },
  "eval": { "per_specialty": 0, "max_items": 8, "batch_size": 8, "max_new_tokens": 12, "bootstrap_resamples": 50 }
}"""

let private stages = [ "data"; "tokenizer"; "base"; "dsa"; "rl"; "merge"; "eval"; "report" ]

/// Runs the pipeline; returns its stdout (fails the test on a non-zero exit).
let private pipeline (runs: string) (configFile: string) (extra: string list) =
    let code, out, err = runMmx ([ "pipeline"; "--config"; configFile; "--runs"; runs ] @ extra)
    Expect.equal code 0 (sprintf "mmx pipeline exit code; stderr:\n%s\nstdout:\n%s" err out)
    out

let private skipped (out: string) stage = out.Contains $"[{stage}] up to date"

[<Tests>]
let tests =
    testSequenced <| testList "Pipeline" [
        test "a config with an unknown eval.split or jobs below 1 is refused at load, before any stage runs" {
            use dir = new TempDir()
            for body, expected in [ """{ "eval": { "split": "train" } }""", "eval.split 'train'"
                                    """{ "jobs": 0 }""", "jobs 0" ] do
                let file = dir.File "bad.json"
                File.WriteAllText(file, body)
                let code, _, err = runMmx [ "pipeline"; "--config"; file; "--runs"; dir.File "runs" ]
                Expect.equal code 2 $"{body}: a usage error"
                Expect.stringContains err expected "naming the field and its value"
                Expect.stringContains err file "and the file"
                Expect.isFalse (Directory.Exists(dir.File "runs")) "no run folder was started"
        }

        test "a reduced pipeline runs every stage, writes the report, and resumes stage by stage" {
            use dir = new TempDir()
            let configFile = dir.File "tiny.json"
            File.WriteAllText(configFile, config)
            let runs = dir.File "runs"
            let run = Path.Combine(runs, "tiny")
            // two threads: the config's two jobs get one each, like the one-thread serial run below
            let first = pipeline runs configFile [ "--threads"; "2" ]
            for stage in stages do
                Expect.isFalse (skipped first stage) $"{stage} ran on the first call"
                Expect.isTrue (File.Exists(Path.Combine(run, "stages", stage + ".json"))) $"{stage} left its record"
            Expect.stringContains first "[base] vision warm-up loss" "the base stage warms the tower up on the image findings"

            let report = File.ReadAllText(Path.Combine(run, "report.md"))
            for row in [ "| base |"; "| adult_medicine-sft |"; "| pediatrics-gba |"; "| pediatrics-grpo |"
                         "| merged-conflict_aware-gba |"; "| merged-ties-gba |"; "| merged-task_arithmetic-gba |"
                         "| merged-conflict_aware-grpo |"; "| merged-conflict_aware-gba-seed1 |"; "| merged-conflict_aware-grpo-seed1 |" ] do
                Expect.stringContains report row $"the main table has the row {row}"
            Expect.stringContains report "## Timings" "timings"
            Expect.stringContains report "Merged model" "the merged-vs-base claim is checked"
            Expect.stringContains report "over 2 RL seeds" "GBA vs GRPO is reported over the seeds"
            Expect.stringContains report "paired by seed" "with the paired differences"
            let saved = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "config.json")))
            Expect.equal (saved["seed"].GetValue<int64>()) 20260101L "config.json records the seed"
            Expect.equal (saved["base"].["preset"].GetValue<string>()) "tiny" "and the overridden fields"
            for metrics in [ "vision-warmup"; "pretrain"; "dsa-adult_medicine"; "dsa-pediatrics"; "rl-pediatrics-gba"; "rl-pediatrics-grpo" ] do
                Expect.isGreaterThan (FileInfo(Path.Combine(run, "metrics", metrics + ".jsonl"))).Length 0L $"metrics/{metrics}.jsonl"
            Expect.isNonEmpty (Directory.GetFiles(Path.Combine(run, "figures"), "*.svg")) "figures"
            let results = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "eval", "base", "results.json")))
            Expect.isNotNull results "the base's results.json parses"

            let again = pipeline runs configFile []
            for stage in stages do
                Expect.isTrue (skipped again stage) $"{stage} skipped on the rerun (outputs checked)"

            // A changed output of the merge stage: merge and everything after it run again, nothing before it.
            let merged = Directory.GetFiles(Path.Combine(run, "merged"), "*.safetensors", SearchOption.AllDirectories)
            Expect.isNonEmpty merged "the merge wrote safetensors"
            File.AppendAllText(merged[0], "x")
            let repaired = pipeline runs configFile []
            Expect.stringContains repaired "changed, rerunning" "the changed output is named"
            for stage in [ "data"; "tokenizer"; "base"; "dsa"; "rl" ] do
                Expect.isTrue (skipped repaired stage) $"{stage} still skipped"
            for stage in [ "merge"; "eval"; "report" ] do
                Expect.isFalse (skipped repaired stage) $"{stage} reran"

            let fromEval = pipeline runs configFile [ "--from"; "eval" ]
            Expect.isTrue (skipped fromEval "merge") "--from eval skips merge"
            Expect.isFalse (skipped fromEval "eval") "--from eval reruns eval"
            Expect.isFalse (skipped fromEval "report") "and the report"

            let code, _, err = runMmx [ "pipeline"; "--config"; configFile; "--runs"; runs; "--from"; "nowhere" ]
            Expect.notEqual code 0 "an unknown stage is an error"
            Expect.stringContains err "nowhere" "naming it"

            // The same run one expert at a time on one thread: experts trained two at a time ("jobs": 2, one
            // thread each) must be the ones trained alone, byte for byte, and answer the same; a shared random stream or
            // shared state between the jobs would differ. (At another thread count per job they may differ in the last
            // bits: PiSSA's SVD, for one, depends on it.)
            let serialFile = dir.File "tiny-serial.json"
            File.WriteAllText(serialFile, config.Replace("\"jobs\": 2,", "\"jobs\": 1,"))
            let serialRuns = dir.File "serial"
            let _ =
                try pipeline serialRuns serialFile [ "--threads"; "1" ]
                finally MMedExpert.Core.Runtime.TorchRuntime.ConfigureThreads() |> ignore // this test thread's torch setting back to all cores
            let serial = Path.Combine(serialRuns, "tiny")
            let files (root: string) sub pattern =
                Directory.GetFiles(Path.Combine(root, sub), pattern, SearchOption.AllDirectories)
                |> Array.map (fun f -> Path.GetRelativePath(root, f)) |> Array.sort
            let experts = files run "experts" "*.safetensors"
            Expect.equal experts.Length 10 "2 specialties × (sft; gba and grpo over 2 seeds) adapters"
            Expect.sequenceEqual (files serial "experts" "*.safetensors") experts "the same adapters"
            let answers = files run "eval" "predictions.jsonl"
            Expect.equal answers.Length 13 "13 models evaluated"
            for f in Array.append experts answers do
                let same = File.ReadAllBytes(Path.Combine(serial, f)) = File.ReadAllBytes(Path.Combine(run, f))
                Expect.isTrue same $"{f}: jobs 1 and 2 agree byte for byte"
        }
    ]
