module MMedExpert.Tests.MergeDriverTests

open System
open System.Collections.Generic
open System.IO
open System.Text.Json.Nodes
open Expecto
open TorchSharp
open MMedExpert.Algebra.Merge
open MMedExpert.Core
open MMedExpert.Core.IO
open MMedExpert.Core.Lora
open MMedExpert.Core.Merging
open MMedExpert.Tests.TestKit

type private T = torch.Tensor

let private f64 = torch.ScalarType.Float64
let private f32 = torch.ScalarType.Float32

let private randn (seed: uint64) (shape: int64[]) : T =
    use g = new torch.Generator(seed, torch.CPU)
    torch.randn(shape, dtype = f32, generator = g)

let private save (path: string) (tensors: (string * T) list) =
    Safetensors.Save(path, tensors |> List.map (fun (k, v) -> KeyValuePair(k, v)))

let private q = "model.layers.0.self_attn.q_proj"
let private down = "model.layers.1.mlp.down_proj"

/// A tiny HF-layout base: two adapted linears and one tensor no expert touches, plus config.json.
let private writeBase (dir: string) =
    Directory.CreateDirectory dir |> ignore
    save (Path.Combine(dir, "model.safetensors"))
        [ q + ".weight", randn 1UL [| 8L; 6L |]
          down + ".weight", randn 2UL [| 6L; 10L |]
          "model.embed_tokens.weight", randn 3UL [| 20L; 6L |] ]
    File.WriteAllText(Path.Combine(dir, "config.json"), """{"model_type": "qwen2"}""")

/// A PEFT LoRA adapter folder; `modules` gives (module, out, in, seed).
let private writeAdapter (dir: string) (rank: int) (alpha: float) (rsLora: bool) (modules: (string * int64 * int64 * uint64) list) =
    Directory.CreateDirectory dir |> ignore
    save (Path.Combine(dir, PeftAdapter.WeightsFileName))
        [ for m, o, i, s in modules do
              yield PeftAdapter.KeyA m, randn s [| int64 rank; i |]
              yield PeftAdapter.KeyB m, randn (s + 1000UL) [| o; int64 rank |] ]
    let config = JsonObject()
    config["peft_type"] <- JsonValue.Create "LORA"
    config["r"] <- JsonValue.Create rank
    config["lora_alpha"] <- JsonValue.Create alpha
    config["use_rslora"] <- JsonValue.Create rsLora
    config["target_modules"] <- JsonArray([| JsonValue.Create "q_proj" :> JsonNode; JsonValue.Create "down_proj" |])
    File.WriteAllText(Path.Combine(dir, PeftAdapter.ConfigFileName), config.ToJsonString())

/// ΔW of one module of an adapter folder, recomputed here in float64 from the raw factors.
let private deltaOf (dir: string) (scale: float) (m: string) : T =
    use f = SafetensorsFile.Open(Path.Combine(dir, PeftAdapter.WeightsFileName))
    f.Load(PeftAdapter.KeyB m, f64).matmul(f.Load(PeftAdapter.KeyA m, f64)).mul(Scalar.op_Implicit scale)

let private maxDiff (a: T) (b: T) = a.to_type(f64).sub(b.to_type f64).abs().max().item<float> ()

/// Two experts: e1 (r 2, alpha 4 → scale 2) on both modules, e2 (rsLoRA r 4, alpha 4 → scale 2) on q_proj only.
let private setup (root: string) =
    let baseDir = Path.Combine(root, "base")
    let e1 = Path.Combine(root, "experts", "cardiology", "gba")
    let e2 = Path.Combine(root, "experts", "radiology", "gba")
    writeBase baseDir
    writeAdapter e1 2 4.0 false [ q, 8L, 6L, 11UL; down, 6L, 10L, 12UL ]
    writeAdapter e2 4 4.0 true [ q, 8L, 6L, 21UL ]
    baseDir, e1, e2

let private request experts config out baseDir asAdapter rank =
    MergeRequest(List<string>(experts: string list), config, out, baseDir, asAdapter, rank)

/// Runs f, expecting it to throw 'e; returns the exception.
let private throwing<'e when 'e :> exn> (what: string) (f: unit -> unit) : 'e =
    try
        f ()
        failtestf "%s: expected %s, nothing was thrown" what typeof<'e>.Name
    with
    | :? 'e as e -> e

let private cfg m = { MergeConfig.defaults with Method = m; Density = 1.0; Lambda = 1.0 }

[<Tests>]
let tests =
    testList "Merge" [
        testList "driver" [
            testCase "a merged model is base + merged ΔW per module, other tensors and side files copied, reports written" <| fun () ->
                use _scope = torch.NewDisposeScope()
                use tmp = new TempDir()
                let baseDir, e1, e2 = setup tmp.Path
                let out = tmp.File "merged"
                let summary = MergeDriver.Run(request [ e1; e2 ] (cfg MergeMethod.TaskArithmetic) out baseDir false 16)
                Expect.equal summary.Experts [| "cardiology/gba"; "radiology/gba" |] "unique expert names"
                Expect.equal summary.Modules 2 "modules"
                use merged = Checkpoint.Open out
                use base' = Checkpoint.Open baseDir
                let expectedQ = base'.Load(q + ".weight", f64).add(deltaOf e1 2.0 q).add (deltaOf e2 2.0 q)
                Expect.isLessThan (maxDiff (merged.Load(q + ".weight")) expectedQ) 1e-5 "q_proj = base + Δ1 + Δ2"
                let expectedDown = base'.Load(down + ".weight", f64).add (deltaOf e1 2.0 down)
                Expect.isLessThan (maxDiff (merged.Load(down + ".weight")) expectedDown) 1e-5 "down_proj: e2 does not adapt it"
                Expect.isTrue (sameTensor (merged.Load "model.embed_tokens.weight") (base'.Load "model.embed_tokens.weight")) "untouched tensor copied exactly"
                Expect.isTrue (File.Exists(Path.Combine(out, "config.json"))) "config.json copied"
                let report = Conflicts.ofJson (File.ReadAllText(Path.Combine(out, MergeDriver.ConflictsFileName)))
                Expect.equal (report.Modules |> Array.map (fun m -> m.Module)) [| q; down |] "conflicts per module, in order"
                Expect.equal (report.Layers |> Array.map (fun l -> l.Layer)) [| 0; 1 |] "conflicts per layer"
                Expect.isFalse (report.Modules.[1].Cosine.[0].[1]).HasValue "no cosine against the expert that does not adapt down_proj"
                Expect.isTrue (File.Exists(Path.Combine(out, MergeDriver.ReportFileName))) "merge.json"

            testCase "a merged adapter at full rank reproduces the merged ΔW and reloads as a PEFT adapter" <| fun () ->
                use _scope = torch.NewDisposeScope()
                use tmp = new TempDir()
                let baseDir, e1, e2 = setup tmp.Path
                let out = tmp.File "adapter"
                let config = { cfg MergeMethod.Ties with Density = 0.5 }
                let summary = MergeDriver.Run(request [ e1; e2 ] config out baseDir true 8)
                Expect.isLessThan summary.MaxRelativeError.Value 1e-5 "full rank (capped at 6) loses nothing"
                use adapter = PeftAdapter.Open out
                Expect.equal (adapter.Rank, adapter.Alpha, adapter.UseRsLora) (8, 8.0, false) "r = lora_alpha: scale 1"
                let rankPattern = adapter.Config["rank_pattern"].AsObject()
                Expect.equal (rankPattern[q].GetValue<int>()) 6 "rank capped at min(out, in) goes to rank_pattern"
                for m in [ q; down ] do
                    let deltas = [ deltaOf e1 2.0 m; (if m = q then deltaOf e2 2.0 m else torch.zeros([| 6L; 10L |], dtype = f64)) ]
                    let expected = (Merge.mergeModule config m (deltas |> List.map (fun d -> d.to_type f32))).Delta
                    Expect.isLessThan (maxDiff (adapter.LoadDelta m) expected) 1e-5 (sprintf "%s: B·A = merged ΔW" m)

            testCase "DARE with seeds derived from expert names gives the same model whatever the expert order" <| fun () ->
                use _scope = torch.NewDisposeScope()
                use tmp = new TempDir()
                let baseDir, e1, e2 = setup tmp.Path
                let config = { cfg MergeMethod.DareTies with DropRate = 0.5 }
                MergeDriver.Run(request [ e1; e2 ] config (tmp.File "ab") baseDir false 16) |> ignore
                MergeDriver.Run(request [ e2; e1 ] config (tmp.File "ba") baseDir false 16) |> ignore
                use ab = Checkpoint.Open(tmp.File "ab")
                use ba = Checkpoint.Open(tmp.File "ba")
                for name in [ q + ".weight"; down + ".weight" ] do
                    Expect.isTrue (sameTensor (ab.Load name) (ba.Load name)) name

            testCase "a mismatched shape is an error naming the file and tensor, and leaves no output" <| fun () ->
                use tmp = new TempDir()
                let baseDir, e1, _ = setup tmp.Path
                let bad = tmp.File "bad"
                writeAdapter bad 2 4.0 false [ q, 8L, 7L, 31UL ]
                let out = tmp.File "merged"
                let e = throwing<MergeException> "shape clash" (fun () -> MergeDriver.Run(request [ e1; bad ] (cfg MergeMethod.Ties) out baseDir false 16) |> ignore)
                Expect.stringContains e.Message (Path.Combine(bad, PeftAdapter.WeightsFileName)) "names the file"
                Expect.stringContains e.Message (PeftAdapter.KeyA q) "names the tensor"
                Expect.isFalse (Directory.Exists out) "no partial output"
                // The same module against a base of another shape.
                let e2 = throwing<MergeException> "base clash" (fun () -> MergeDriver.Run(request [ bad ] (cfg MergeMethod.Ties) out baseDir false 16) |> ignore)
                Expect.stringContains e2.Message (q + ".weight") "names the base tensor"
                Expect.stringContains e2.Message baseDir "names the base"

            testCase "corrupt adapters are errors naming the file (and the tensor or field)" <| fun () ->
                use tmp = new TempDir()
                let baseDir, e1, _ = setup tmp.Path
                let truncated = tmp.File "truncated"
                writeAdapter truncated 2 4.0 false [ q, 8L, 6L, 41UL ]
                let weights = Path.Combine(truncated, PeftAdapter.WeightsFileName)
                let bytes = File.ReadAllBytes weights
                File.WriteAllBytes(weights, bytes[.. bytes.Length - 9])
                let e = throwing<SafetensorsException> "truncated file" (fun () -> PeftAdapter.Open truncated |> ignore)
                Expect.stringContains e.Message weights "names the file"
                let unpaired = tmp.File "unpaired"
                Directory.CreateDirectory unpaired |> ignore
                File.Copy(Path.Combine(e1, PeftAdapter.ConfigFileName), Path.Combine(unpaired, PeftAdapter.ConfigFileName))
                save (Path.Combine(unpaired, PeftAdapter.WeightsFileName)) [ PeftAdapter.KeyA q, randn 1UL [| 2L; 6L |] ]
                let e = throwing<LoraException> "A without B" (fun () -> PeftAdapter.Open unpaired |> ignore)
                Expect.stringContains e.Message (PeftAdapter.KeyA q) "names the tensor"
                let wrongRank = tmp.File "wrong-rank"
                writeAdapter wrongRank 2 4.0 false [ q, 8L, 6L, 51UL ]
                File.WriteAllText(Path.Combine(wrongRank, PeftAdapter.ConfigFileName), """{"peft_type": "LORA", "r": 3, "lora_alpha": 4}""")
                let e = throwing<LoraException> "rank disagrees with r" (fun () -> PeftAdapter.Open wrongRank |> ignore)
                Expect.stringContains e.Message (PeftAdapter.KeyA q) "names the tensor"
                Expect.stringContains e.Message "r = 3" "says what the config claims"
                File.WriteAllText(Path.Combine(wrongRank, PeftAdapter.ConfigFileName), """{"peft_type": "LORA", "lora_alpha": 4}""")
                let e = throwing<LoraException> "r missing" (fun () -> PeftAdapter.Open wrongRank |> ignore)
                Expect.stringContains e.Message "adapter_config.json: r is missing" "names the file and field"

            testCase "mmx merge runs from options and from a config file; bad input exits 2 naming it" <| fun () ->
                use tmp = new TempDir()
                let baseDir, e1, e2 = setup tmp.Path
                let out = tmp.File "cli"
                let code, stdout, stderr =
                    runMmx [ "merge"; "--base"; baseDir; "--experts"; $"{e1},{e2}"; "--method"; "conflict_aware"; "--density"; "0.5"
                             "--out"; out; "--as-adapter"; "--rank"; "4"; "--json" ]
                Expect.equal code 0 stderr
                let json = JsonNode.Parse(stdout)
                Expect.equal (json["method"].GetValue<string>()) "conflict_aware" "summary JSON"
                Expect.equal (json["modules"].GetValue<int>()) 2 "modules"
                Expect.isTrue (File.Exists(Path.Combine(out, PeftAdapter.WeightsFileName))) "adapter written"
                let configFile = tmp.File "merge.json"
                File.WriteAllText(configFile, $"""{{"base": "base", "experts": ["experts/cardiology/gba", "experts/radiology/gba"], "method": "ties", "density": 0.3, "out": "from-config"}}""")
                let code, _, stderr = runMmx [ "merge"; "--config"; configFile; "--lambda"; "0.5" ]
                Expect.equal code 0 stderr
                let written = JsonNode.Parse(File.ReadAllText(Path.Combine(tmp.File "from-config", MergeDriver.ReportFileName)))
                Expect.equal (written["method"].GetValue<string>(), written["density"].GetValue<float>(), written["lambda"].GetValue<float>()) ("ties", 0.3, 0.5) "file values, option wins"
                File.WriteAllText(configFile, """{"experts": ["a"], "out": "x", "densty": 0.3}""")
                let code, _, stderr = runMmx [ "merge"; "--config"; configFile ]
                Expect.equal code 2 "bad config exits 2"
                Expect.stringContains stderr "densty: unknown field" "names the field"
                Expect.stringContains stderr configFile "names the file"
                let code, _, stderr = runMmx [ "merge"; "--experts"; e1; "--method"; "median"; "--out"; out; "--as-adapter" ]
                Expect.equal code 2 "bad method exits 2"
                Expect.stringContains stderr "unknown merge method 'median'" "names the value"
        ]
    ]
