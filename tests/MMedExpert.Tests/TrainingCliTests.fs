module MMedExpert.Tests.TrainingCliTests

open System.IO
open System.Text.Json
open Expecto
open MMedExpert.Core.Model
open MMedExpert.Core.Tokenization
open MMedExpert.Core.Training
open MMedExpert.Tests.TestKit

/// MedSynth items, and a tiny random base over a tokenizer trained on their text (the run layout's base/ folder).
let medSynthWithTinyBase (dir: TempDir) =
    let data = dir.File "data"
    let code, _, err = runMmx [ "data"; "synth"; "--out"; data; "--n"; "40"; "--image-size"; "56" ]
    Expect.equal code 0 $"mmx data synth: {err}"
    let texts =
        [ for line in File.ReadLines(Path.Combine(data, "sft.jsonl")) do
            use doc = JsonDocument.Parse line
            yield doc.RootElement.GetProperty("question").GetString()
            yield doc.RootElement.GetProperty("reasoning").GetString() ]
    let tokenizerDir = dir.File "tokenizer"
    Directory.CreateDirectory tokenizerDir |> ignore
    let tokenizer = BpeTrainer.TrainToFile(texts, Path.Combine(tokenizerDir, "tokenizer.json"), BpeTrainerOptions(Merges = 400))
    let baseDir = dir.File "base"
    do
        use m = Qwen25VL.CreateRandom(Qwen25VLConfig.Preset("tiny").WithTokenizer(tokenizer), 4L)
        Qwen25VL.Save(m, baseDir, tokenizerDir)
    data, baseDir

[<Tests>]
let tests =
    testList "TrainingCli" [
        test "mmx dsa trains two experts (gaussian, pissa) from one base; mmx gba trains one with GBA, resumes, refuses bad input" {
            use dir = new TempDir()
            let data, baseDir = medSynthWithTinyBase dir
            let out = dir.File "run"
            let code, stdout, err =
                runMmx [ "dsa"; "--data"; data; "--base"; baseDir; "--out"; out; "--specialties"; "pediatrics,oncology_surgery"
                         "--init"; "gaussian,pissa"; "--steps"; "2"; "--batch-size"; "2"; "--rank"; "4"; "--json" ]
            Expect.equal code 0 $"mmx dsa: {err}"
            use results = JsonDocument.Parse stdout
            Expect.equal (results.RootElement.GetArrayLength()) 2 "one result per expert"
            for specialty, init in [ "pediatrics", "\"gaussian\""; "oncology_surgery", "true" ] do
                let adapter = Path.Combine(out, "experts", specialty, "sft")
                Expect.isTrue (File.Exists(Path.Combine(adapter, "adapter_model.safetensors"))) $"{specialty}: PEFT weights"
                use config = JsonDocument.Parse(File.ReadAllText(Path.Combine(adapter, "adapter_config.json")))
                Expect.equal (config.RootElement.GetProperty("init_lora_weights").GetRawText()) init $"{specialty}: init as PEFT reads it"
                Expect.equal (MetricsWriter.Read(Path.Combine(out, "metrics", $"dsa-{specialty}.jsonl")).Count) 2 $"{specialty}: 2 metrics lines"
            use pissaConfig = JsonDocument.Parse(File.ReadAllText(Path.Combine(out, "experts", "oncology_surgery", "sft", "adapter_config.json")))
            Expect.equal (pissaConfig.RootElement.GetProperty("r").GetInt32()) 8 "PiSSA expert saved as its change from the base (rank 2r)"

            let gba (groupSize: int) extra =
                runMmx ([ "gba"; "--base"; baseDir; "--adapter"; Path.Combine(out, "experts", "pediatrics", "sft"); "--data"; data
                          "--specialty"; "pediatrics"; "--out"; dir.File "gba"; "--steps"; "2"; "--group-size"; string groupSize; "--prompts-per-step"; "2"
                          "--max-new-tokens"; "8"; "--checkpoint-every"; "1"; "--multi-strategy"; "--json" ] @ extra)
            let code, stdout, err = gba 2 []
            Expect.equal code 0 $"mmx gba: {err}"
            use result = JsonDocument.Parse stdout
            Expect.equal (result.RootElement.GetProperty("steps").GetInt64()) 2L "2 steps"
            Expect.isTrue (File.Exists(dir.File "gba/adapter/adapter_model.safetensors")) "trained adapter saved as PEFT"
            let lines = MetricsWriter.Read(dir.File "gba/metrics.jsonl")
            Expect.equal lines.Count 2 "a metrics line per step"
            for p in [ "differential"; "intuitive"; "analytical"; "bayesian" ] do
                Expect.isTrue (lines[0].ContainsKey $"reward_{p}") $"reward of perspective {p} logged"
            let code, _, err = gba 2 [ "--resume" ]
            Expect.equal code 0 $"resuming a finished run: {err}"
            Expect.equal (MetricsWriter.Read(dir.File "gba/metrics.jsonl").Count) 2 "nothing rerun"
            let code, _, err = gba 4 [ "--resume" ]
            Expect.equal code 2 "resuming with other settings is an input error"
            Expect.stringContains err "group_size" "names the setting"
            let code, _, err = gba 2 [ "--advantage"; "nope" ]
            Expect.equal code 2 "unknown estimator"
            Expect.stringContains err "--advantage" "names the option"
        }
    ]
