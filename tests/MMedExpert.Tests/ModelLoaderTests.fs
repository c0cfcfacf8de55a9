/// The one loading path (Core/Model/Loading): what a model reference resolves to, what the loader builds, and the one
/// error line a bad adapter gives through a command.
module MMedExpert.Tests.ModelLoaderTests

open System.IO
open System.Text.Json.Nodes
open Expecto
open TorchSharp
open MMedExpert.Core.IO
open MMedExpert.Core.Lora
open MMedExpert.Core.Model
open MMedExpert.Core.Model.Loading
open MMedExpert.Tests.TestKit
open MMedExpert.Tests.TrainingCliTests

/// A tiny base with tokenizer (TrainingCliTests) and a trained-looking adapter on it, saved with the base as its
/// base_model_name_or_path; returns (base, adapter, the adapter's logits on a prompt, the prompt).
let private baseAndAdapter (dir: TempDir) =
    let _, baseDir = medSynthWithTinyBase dir
    let adapterDir = dir.File "adapter"
    use m = Qwen25VL.Load baseDir
    use adapters = new LoraAdapters(m)
    adapters.Add("e", LoraConfig(R = 2, Alpha = 4.0, Dropout = 0.0, Init = LoraInit.Gaussian, BaseModelNameOrPath = baseDir), 3L)
    do
        use g = new torch.Generator(7UL)
        use _ = torch.no_grad ()
        for w in adapters.Modules "e" do w.B.add_(torch.randn(w.B.shape, generator = g).mul_((0.05).ToScalar())) |> ignore
    adapters.Save("e", adapterDir)
    adapters.SetActive "e"
    use ids = torch.tensor([| 1L; 5L; 9L; 12L; 3L |]).view(1L, 5L)
    use _ = torch.no_grad ()
    let logits = m.forward ids
    baseDir, adapterDir, logits, [| 1L; 5L; 9L; 12L; 3L |]

[<Tests>]
let tests =
    testSequenced <| testList "ModelLoader" [
        test "references resolve to a checkpoint or an adapter on its base; the loaded adapter gives the trained outputs" {
            use dir = new TempDir()
            let baseDir, adapterDir, trained, prompt = baseAndAdapter dir
            use trained = trained
            let r = ModelReference.Resolve adapterDir
            Expect.equal r.BaseDir (Path.GetFullPath baseDir) "base from base_model_name_or_path"
            Expect.equal r.AdapterDir (Path.GetFullPath adapterDir) "the adapter"
            Expect.equal (ModelReference.Resolve baseDir).AdapterDir null "a checkpoint has no adapter"
            Expect.equal (ModelReference.Resolve("adapter", runDir = dir.Path)).AdapterDir (Path.GetFullPath adapterDir) "a name inside a run folder"
            Expect.throwsT<ModelWeightsException> (fun () -> ModelReference.Resolve(dir.File "nope") |> ignore) "a missing folder is named"
            use loaded = ModelLoader.Load(adapterDir, ModelLoadOptions(AdapterName = "x"))
            Expect.sequenceEqual loaded.Lora.Active [ "x" ] "adapter active under its name"
            use ids = torch.tensor(prompt).view(1L, 5L)
            use _ = torch.no_grad ()
            use y = loaded.Model.forward ids
            Expect.isTrue (sameTensor y trained) "same logits as the model the adapter was trained on"
            use mixed = ModelLoader.Load(ModelReference(baseDir), ModelLoadOptions(Compute = torch.ScalarType.BFloat16))
            Expect.equal mixed.Model.ComputeDType (System.Nullable torch.ScalarType.BFloat16) "compute dtype applied"
            Expect.isNull mixed.Lora "no adapter"
        }

        test "an adapter that does not fit the base is one error line naming the file and the tensor" {
            use dir = new TempDir()
            let baseDir, adapterDir, trained, _ = baseAndAdapter dir
            trained.Dispose()
            let weights = Path.Combine(adapterDir, PeftAdapter.WeightsFileName)
            let key =
                use f = SafetensorsFile.Open weights
                f.Names |> Seq.filter (fun n -> n.EndsWith ".lora_A.weight") |> Seq.sort |> Seq.head
            // Wrong shape: one factor one column short of its layer.
            let tensors =
                use f = SafetensorsFile.Open weights
                [ for n in f.Names ->
                    let t = f.Load(n, copy = true)
                    System.Collections.Generic.KeyValuePair(n, (if n = key then t.narrow(1, 0, t.shape[1] - 1L).contiguous() else t)) ]
            Safetensors.Save(weights, tensors)
            let code, _, err = runMmx [ "generate"; "--model"; baseDir; "--adapter"; adapterDir; "--prompt"; "hi"; "--max-new-tokens"; "2" ]
            Expect.equal code 2 "bad input exits 2"
            Expect.equal (err.Trim().Split('\n').Length) 1 $"one line: {err}"
            Expect.stringContains err weights "names the file"
            Expect.stringContains err key "names the tensor"
            // Targets that do not fit: the config targets a module the base does not have, not the file's.
            let configPath = Path.Combine(adapterDir, PeftAdapter.ConfigFileName)
            let json = JsonNode.Parse(File.ReadAllText configPath).AsObject()
            json["target_modules"] <- JsonArray(JsonValue.Create "no_such_proj")
            File.WriteAllText(configPath, json.ToJsonString())
            let code, _, err = runMmx [ "generate"; "--model"; adapterDir; "--prompt"; "hi"; "--max-new-tokens"; "2" ]
            Expect.equal code 2 "bad input exits 2"
            Expect.equal (err.Trim().Split('\n').Length) 1 $"one line: {err}"
            Expect.stringContains err "does not target" "says why"
            Expect.stringContains err weights "names the file"
        }
    ]
