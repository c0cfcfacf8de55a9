/// `mmx parity` against the Hugging Face reference fixtures of the shared folder (../shared/fixtures/hf-parity, or
/// MMX_SHARED): the model, loaded through the one loader, must match every fixture; a broken fixture or a divergence
/// must be named.
module MMedExpert.Tests.ParityTests

open System.Collections.Generic
open System.IO
open System.Text.Json
open Expecto
open TorchSharp
open MMedExpert.Core.IO
open MMedExpert.Tests.TestKit

/// Every fixture folder under fixtures/hf-parity of the shared folder (None when the shared folder lacks them).
let private fixtures =
    sharedDir
    |> Option.map (fun d -> Path.Combine(d, "fixtures", "hf-parity"))
    |> Option.filter Directory.Exists
    |> Option.map (fun d -> Directory.GetDirectories d |> Array.sort)
    |> Option.filter (fun ds -> ds.Length > 0)

let private absent = "no fixtures under ../shared/fixtures/hf-parity (set MMX_SHARED to the shared folder to run parity)"

let rec private copyDir (from: string) (into: string) =
    Directory.CreateDirectory into |> ignore
    for f in Directory.GetFiles from do File.Copy(f, Path.Combine(into, Path.GetFileName f))
    for d in Directory.GetDirectories from do copyDir d (Path.Combine(into, Path.GetFileName d))

/// A copy of the first fixture whose outputs.safetensors has one tensor replaced.
let private withOutput (dir: TempDir) (name: string) (replace: torch.Tensor -> torch.Tensor) =
    let copy = dir.File "fixture"
    copyDir fixtures.Value[0] copy
    let path = Path.Combine(copy, "outputs.safetensors")
    let tensors =
        use file = SafetensorsFile.Open path
        [ for n in file.Names -> let t = file.Load(n, copy = true) in KeyValuePair(n, (if n = name then replace t else t)) ]
    Safetensors.Save(path, tensors)
    copy

[<Tests>]
let tests =
    testSequenced <| testList "Parity" [
        test "every shared hf-parity fixture matches: pixel values and logits within 1e-4, positions, rope deltas, greedy ids equal" {
            match fixtures with
            | None -> skiptest absent
            | Some dirs ->
                for dir in dirs do
                    let code, out, err = runMmx [ "parity"; "--fixture"; dir; "--json" ]
                    Expect.equal code 0 $"mmx parity {dir}: {err}"
                    let r = JsonDocument.Parse(out).RootElement
                    Expect.isLessThanOrEqual (r.GetProperty("pixel_values_max_abs_diff").GetDouble()) 1e-4 $"{dir}: pixel values"
                    Expect.isLessThanOrEqual (r.GetProperty("logits_max_abs_diff").GetDouble()) 1e-4 $"{dir}: logits"
                    for key in [ "position_ids_equal"; "rope_deltas_equal"; "greedy_equal" ] do
                        Expect.isTrue (r.GetProperty(key).GetBoolean()) $"{dir}: {key}"
        }

        test "--dtype bf16 reports its figures without gating the logits" {
            match fixtures with
            | None -> skiptest absent
            | Some dirs ->
                let code, out, err = runMmx [ "parity"; "--fixture"; dirs[0]; "--json"; "--dtype"; "bf16" ]
                Expect.equal code 0 $"bf16 parity: {err}"
                let r = JsonDocument.Parse(out).RootElement
                Expect.equal (r.GetProperty("dtype").GetString()) "bf16" "dtype"
                Expect.isFalse (r.GetProperty("gated").GetBoolean()) "not gated"
                Expect.isGreaterThan (r.GetProperty("logits_max_abs_diff").GetDouble()) 0.0 "bf16 rounding shows in the logits"
        }

        test "a divergence exits non-zero and names its stage" {
            match fixtures with
            | None -> skiptest absent
            | Some _ ->
                use dir = new TempDir()
                let copy = withOutput dir "greedy_ids" (fun t -> (t + 1L).remainder(torch.tensor 7L))
                let code, out, err = runMmx [ "parity"; "--fixture"; copy; "--json" ]
                Expect.equal code 1 $"diverged: {err}"
                Expect.stringContains err "first divergence at greedy" "names the stage"
                Expect.equal (JsonDocument.Parse(out).RootElement.GetProperty("first_divergence").GetString()) "greedy" "JSON names it too"
        }

        test "a tensor of the wrong shape or a missing file is one error line naming the file and the tensor" {
            match fixtures with
            | None -> skiptest absent
            | Some _ ->
                use dir = new TempDir()
                let copy = withOutput dir "logits" (fun t -> t.narrow(1, 0, 3).contiguous())
                let code, _, err = runMmx [ "parity"; "--fixture"; copy ]
                Expect.equal code 2 "bad input exits 2"
                Expect.equal (err.Trim().Split('\n').Length) 1 $"one line: {err}"
                Expect.stringContains err "outputs.safetensors" "names the file"
                Expect.stringContains err "'logits'" "names the tensor"
                File.Delete(Path.Combine(copy, "image.png"))
                let code, _, err = runMmx [ "parity"; "--fixture"; copy ]
                Expect.equal code 2 "missing file exits 2"
                Expect.stringContains err "image.png" "names the missing file"
        }
    ]
