module MMedExpert.Tests.LoraTests

open System
open System.IO
open System.Text.Json.Nodes
open Expecto
open TorchSharp
open MMedExpert.Core.IO
open MMedExpert.Core.Lora
open MMedExpert.Core.Model
open MMedExpert.Core.Training
open MMedExpert.Tests.TestKit

/// The toy model with base weights fixed by the seed (the same seed gives the same base).
let private toy (seed: int64) =
    let m = new ToyCausalLm(ToyCausalLmConfig(), seed)
    m.eval ()
    m

let private tokens (seed: int64) =
    use g = new torch.Generator(uint64 seed)
    torch.randint(0L, 64L, [| 2L; 9L |], generator = g)

let logits (m: ToyCausalLm) (ids: torch.Tensor) =
    use _ = torch.no_grad ()
    m.forward ids

let maxDiff (a: torch.Tensor) (b: torch.Tensor) =
    use d = (a.to_type(torch.float64) - b.to_type(torch.float64)).abs().max()
    d.item<float> ()

let errorOf (f: unit -> 'a) =
    try
        f () |> ignore
        failwith "expected a LoraException"
    with :? LoraException as e -> e.Message

/// Makes an adapter non-trivial, as training would: B (and A) moved away from their initial values.
let private perturb (adapters: LoraAdapters) (name: string) (seed: int64) =
    use g = new torch.Generator(uint64 seed)
    use _ = torch.no_grad ()
    for w in adapters.Modules name do
        w.B.add_(torch.randn(w.B.shape, generator = g).mul_((0.05).ToScalar())) |> ignore
        w.A.add_(torch.randn(w.A.shape, generator = g).mul_((0.05).ToScalar())) |> ignore

let private cfg (init: LoraInit) = LoraConfig(R = 4, Alpha = 8.0, Dropout = 0.0, Init = init)

let private defaultLmModules =
    [ for l in 0..1 do
        for n in [ "self_attn.q_proj"; "self_attn.k_proj"; "self_attn.v_proj"; "self_attn.o_proj"; "mlp.gate_proj"; "mlp.up_proj"; "mlp.down_proj" ] ->
            $"model.layers.{l}.{n}" ]
    |> List.sort

[<Tests>]
let tests =
    testList "Lora" [
        test "a fresh adapter with B = 0 (kaiming, gaussian) leaves the outputs unchanged" {
            for init in [ LoraInit.Kaiming; LoraInit.Gaussian ] do
                use m = toy 1L
                use ids = tokens 2L
                use before = logits m ids
                use adapters = new LoraAdapters(m)
                adapters.Add("e", cfg init, 7L)
                adapters.SetActive "e"
                for w in adapters.Modules "e" do
                    Expect.isTrue (w.B.abs().sum().item<float32> () = 0.0f) "B starts at zero"
                    Expect.isTrue (w.A.abs().sum().item<float32> () > 0.0f) "A is random"
                use after = logits m ids
                Expect.isTrue (sameTensor before after) $"{init}: identical outputs"
        }

        test "gaussian init draws A with standard deviation 1/r (PEFT)" {
            use m = toy 1L
            use adapters = new LoraAdapters(m)
            adapters.Add("g", LoraConfig(R = 4, Init = LoraInit.Gaussian, TargetModules = TargetModules.AllLinear, IncludeVision = true), 3L)
            let all = torch.cat([| for w in adapters.Modules "g" -> w.A.detach().flatten() |], 0L)
            let std = all.std().item<float32> () |> float
            Expect.isLessThan (abs (std - 0.25)) 0.02 "std ≈ 1/r"
        }

        test "default targets: LM attention and MLP, not the vision tower or lm_head; vision on request; regex full match" {
            use m = toy 1L
            use adapters = new LoraAdapters(m)
            adapters.Add("lm", LoraConfig(), 1L)
            Expect.sequenceEqual [ for w in adapters.Modules "lm" -> w.ModulePath ] defaultLmModules "default modules"
            adapters.Add("withVision", LoraConfig(IncludeVision = true), 1L)
            let vision = [ for w in adapters.Modules "withVision" do if w.ModulePath.StartsWith "visual." then w.ModulePath ]
            Expect.sequenceEqual vision [ "visual.blocks.0.mlp.down_proj"; "visual.blocks.0.mlp.gate_proj"; "visual.blocks.0.mlp.up_proj" ] "vision MLP by suffix"
            adapters.Add("rx", LoraConfig(TargetModules = TargetModules.FromRegex @"model\.layers\.1\.self_attn\.(q|v)_proj"), 1L)
            Expect.sequenceEqual [ for w in adapters.Modules "rx" -> w.ModulePath ] [ "model.layers.1.self_attn.q_proj"; "model.layers.1.self_attn.v_proj" ] "regex"
            // Full match: a pattern matching only a prefix selects nothing.
            let msg = errorOf (fun () -> adapters.Add("none", LoraConfig(TargetModules = TargetModules.FromRegex @"model\.layers\.1"), 1L))
            Expect.stringContains msg "match no linear layer" "prefix is not a full match"
            adapters.Add("all", LoraConfig(TargetModules = TargetModules.AllLinear), 1L)
            let paths = [ for w in adapters.Modules "all" -> w.ModulePath ]
            Expect.isFalse (List.contains "lm_head" paths) "all-linear excludes lm_head"
            Expect.equal paths.Length 14 "all-linear: every LM linear (vision excluded by default)"
        }

        test "the base is frozen: no base gradient and no base optimizer state" {
            use m = toy 1L
            m.train ()
            use adapters = new LoraAdapters(m)
            adapters.Add("e", cfg LoraInit.Kaiming, 1L)
            adapters.SetActive "e"
            let ps = adapters.TrainableParameters "e"
            Expect.equal ps.Count (2 * defaultLmModules.Length) "A and B per module"
            use opt = torch.optim.AdamW(ps, 1e-2)
            for step in 1..2 do
                opt.zero_grad ()
                use ids = tokens (int64 step)
                use loss = m.Loss ids
                loss.backward ()
                opt.step () |> ignore
            for struct (name, p) in m.named_parameters () do
                Expect.isFalse p.requires_grad $"{name} frozen"
                Expect.isNull p.grad $"{name} has no gradient"
            for p in ps do Expect.isNotNull p.grad "adapter parameters have gradients"
            Expect.equal (opt.state_dict().State.Count) ps.Count "optimizer state only for adapter parameters"
            let baseHandles = set [ for p in m.parameters () -> p.Handle ]
            for p in opt.parameters () do Expect.isFalse (baseHandles.Contains p.Handle) "no base parameter in the optimizer"
        }

        test "several active adapters add their deltas; none active is the base model" {
            use m = toy 1L
            use ids = tokens 3L
            use baseOut = logits m ids
            use adapters = new LoraAdapters(m)
            adapters.Add("a", cfg LoraInit.Kaiming, 1L)
            adapters.Add("b", cfg LoraInit.OLoRA, 2L)
            perturb adapters "a" 10L
            perturb adapters "b" 11L
            adapters.SetActive("a", "b")
            let path = "model.layers.0.self_attn.q_proj"
            let linear = adapters.Linear path
            use x = torch.randn(3L, 32L)
            use y = (use _ = torch.no_grad () in linear.forward x)
            use da = adapters.DeltaWeight("a", path)
            use db = adapters.DeltaWeight("b", path)
            use expected = torch.nn.functional.linear(x, linear.weight + da + db, linear.bias)
            Expect.isLessThan (maxDiff y expected) 1e-5 "layer output = base + x·(ΔA + ΔB)ᵀ"
            use both = logits m ids
            Expect.isGreaterThan (maxDiff both baseOut) 1e-3 "the adapters change the model"
            adapters.SetActive()
            use none = logits m ids
            Expect.isTrue (sameTensor none baseOut) "no adapter active: exactly the base outputs"
            adapters.SetActive "a"
            use onlyA = logits m ids
            Expect.isGreaterThan (maxDiff onlyA both) 1e-4 "one adapter differs from two"
        }

        test "merge then unmerge restores the weights; merged output equals adapter output (fp32 and bf16)" {
            for dtype in [ torch.float32; torch.bfloat16 ] do
                use m = toy 1L
                m.``to`` (dtype) |> ignore
                use ids = tokens 4L
                use adapters = new LoraAdapters(m)
                adapters.Add("e", cfg LoraInit.PiSSA, 5L)
                perturb adapters "e" 12L
                adapters.SetActive "e"
                let original = [ for p in adapters.LinearPaths -> p, (adapters.Linear p).weight.detach().clone() ] |> dict
                use adapterOut = logits m ids
                adapters.Merge "e"
                let msg = errorOf (fun () -> adapters.SetActive())
                Expect.stringContains msg "merged" "a merged adapter cannot be deactivated"
                use mergedOut = logits m ids
                let tol = if dtype = torch.float32 then 1e-4 else 0.25
                Expect.isLessThan (maxDiff mergedOut adapterOut) tol $"{dtype}: merged output = adapter output"
                let changed = original |> Seq.exists (fun kv -> not (sameTensor kv.Value (adapters.Linear kv.Key).weight))
                Expect.isTrue changed "merging changes the weights"
                adapters.Unmerge "e"
                for kv in original do
                    let w = (adapters.Linear kv.Key).weight
                    if dtype = torch.float32 then Expect.isLessThan (maxDiff w kv.Value) 1e-6 $"{kv.Key} restored"
                    else Expect.isTrue (sameTensor w kv.Value) $"{kv.Key} restored exactly (bf16 keeps a copy)"
                use afterOut = logits m ids
                Expect.isLessThan (maxDiff afterOut adapterOut) (if dtype = torch.float32 then 1e-5 else 1e-2) "unmerged adapter output as before"
        }

        test "PiSSA and OLoRA: residual base + adapter equals the original weight; the model is unchanged at init" {
            for init in [ LoraInit.PiSSA; LoraInit.OLoRA; LoraInit.Random ] do
                use m = toy 1L
                use ids = tokens 5L
                use before = logits m ids
                use adapters = new LoraAdapters(m)
                let config = LoraConfig(R = 4, Alpha = 8.0, Dropout = 0.0, Init = init)
                adapters.Add("e", config, 9L)
                adapters.SetActive "e"
                use after = logits m ids
                Expect.isTrue (sameTensor before after) $"{init}: outputs identical at init"
                for w in adapters.Modules "e" do
                    let weight = (adapters.Linear w.ModulePath).weight.detach()
                    use ba = w.InitialB.matmul(w.InitialA).mul(config.Scale.ToScalar())
                    use residual = weight - ba
                    use rebuilt = residual + w.B.matmul(w.A).mul(config.Scale.ToScalar())
                    Expect.isLessThan (maxDiff rebuilt weight) 1e-5 $"{init} {w.ModulePath}: W_res + s·B·A = W"
                    use delta = w.Delta()
                    Expect.equal (delta.abs().max().item<float32> ()) 0.0f "ΔW from the original base is zero at init"
                    if init = LoraInit.PiSSA then
                        // s·B₀A₀ is the best rank-r approximation: the residual's energy is the tail of the spectrum.
                        let struct (_, s, _) = torch.linalg.svd(weight, fullMatrices = false)
                        let tail = s.narrow(0L, 4L, s.shape[0] - 4L).square().sum().item<float32> () |> float
                        let res = residual.square().sum().item<float32> () |> float
                        Expect.floatClose { absolute = 1e-5; relative = 1e-4 } res tail $"{w.ModulePath}: ‖W_res‖² = Σ tail σ²"
                    if init = LoraInit.OLoRA then
                        use qtq = w.InitialB.t().matmul(w.InitialB)
                        Expect.isLessThan (maxDiff qtq (torch.eye 4L)) 1e-5 "OLoRA: B₀ = Q_r has orthonormal columns"
        }

        test "PEFT round trip: what is saved loads back to the same adapter" {
            use dir = new TempDir()
            use m = toy 1L
            use adapters = new LoraAdapters(m)
            let config = LoraConfig(R = 4, Alpha = 16.0, Dropout = 0.1, UseRsLora = true, Init = LoraInit.Gaussian, BaseModelNameOrPath = "toy")
            adapters.Add("e", config, 3L)
            perturb adapters "e" 4L
            let out = dir.File "adapter"
            adapters.Save("e", out)
            let json = JsonNode.Parse(File.ReadAllText(Path.Combine(out, "adapter_config.json"))).AsObject()
            Expect.equal (json["peft_type"].GetValue<string>()) "LORA" "peft_type"
            Expect.equal (json["r"].GetValue<int>()) 4 "r"
            Expect.equal (json["lora_alpha"].GetValue<int>()) 16 "lora_alpha"
            Expect.equal (json["use_rslora"].GetValue<bool>()) true "use_rslora"
            Expect.equal (json["init_lora_weights"].GetValue<string>()) "gaussian" "init_lora_weights"
            Expect.equal (json["task_type"].GetValue<string>()) "CAUSAL_LM" "task_type"
            Expect.equal (json["bias"].GetValue<string>()) "none" "bias"
            Expect.equal (json["exclude_modules"].GetValue<string>()) @"(model\.)?visual\..*" "vision excluded for PEFT too"
            Expect.sequenceEqual [ for n in json["target_modules"].AsArray() -> n.GetValue<string>() ] [ "q_proj"; "k_proj"; "v_proj"; "o_proj"; "gate_proj"; "up_proj"; "down_proj" ] "target_modules"
            use file = SafetensorsFile.Open(Path.Combine(out, "adapter_model.safetensors"))
            Expect.sequenceEqual (file.Names |> Seq.sort) ([ for p in defaultLmModules do yield $"base_model.model.{p}.lora_A.weight"; yield $"base_model.model.{p}.lora_B.weight" ] |> List.sort) "PEFT keys"
            Expect.equal file.Metadata["format"] "pt" "metadata"
            use m2 = toy 1L
            use loaded = new LoraAdapters(m2)
            let back = loaded.Load(out, "x")
            Expect.equal back.Scale config.Scale "same scale"
            Expect.equal back.Dropout 0.1 "same dropout"
            for w in adapters.Modules "e" do
                let w2 = loaded.Weights("x", w.ModulePath)
                Expect.isTrue (sameTensor w.A w2.A && sameTensor w.B w2.B) $"{w.ModulePath}: same factors"
            adapters.SetActive "e"
            loaded.SetActive "x"
            use ids = tokens 6L
            use y1 = logits m ids
            use y2 = logits m2 ids
            Expect.isTrue (sameTensor y1 y2) "same outputs"
        }

        test "PiSSA/OLoRA/random: the saved delta-from-original-base adapter reproduces the trained model on the original base" {
            for init in [ LoraInit.PiSSA; LoraInit.OLoRA; LoraInit.Random ] do
                use dir = new TempDir()
                use m = toy 1L
                use adapters = new LoraAdapters(m)
                adapters.Add("e", LoraConfig(R = 3, Alpha = 6.0, Init = init), 2L)
                perturb adapters "e" 8L
                adapters.SetActive "e"
                use ids = tokens 7L
                use trained = logits m ids
                adapters.Save("e", dir.File "a")
                let json = JsonNode.Parse(File.ReadAllText(dir.File "a/adapter_config.json")).AsObject()
                Expect.equal (json["r"].GetValue<int>()) 6 "rank doubled"
                Expect.equal (json["lora_alpha"].GetValue<int>()) 12 "alpha doubled (same scale)"
                Expect.equal (json["init_lora_weights"].GetValue<bool>()) true "saved as plain LoRA"
                use fresh = toy 1L
                use other = new LoraAdapters(fresh)
                other.Load(dir.File "a", "e") |> ignore
                other.SetActive "e"
                use reproduced = logits fresh ids
                Expect.isLessThan (maxDiff reproduced trained) 1e-5 $"{init}: same outputs from the original base"
        }

        test "the PEFT fixture (written by an independent script) loads with its documented values" {
            use m = toy 1L
            use adapters = new LoraAdapters(m)
            let config = adapters.Load(fixture "peft/toy-qv-r2", "fx")
            Expect.equal config.R 2 "r"
            Expect.equal config.Scale 2.0 "scale = 4 / 2"
            Expect.equal config.Dropout 0.05 "dropout"
            let paths = [ for w in adapters.Modules "fx" -> w.ModulePath ]
            Expect.sequenceEqual paths [ "model.layers.0.self_attn.q_proj"; "model.layers.0.self_attn.v_proj"; "model.layers.1.self_attn.q_proj"; "model.layers.1.self_attn.v_proj" ] "modules"
            for w in adapters.Modules "fx" do
                let layer = int (w.ModulePath.Split('.')[2])
                let mIdx = if w.ModulePath.EndsWith "q_proj" then 0 else 1
                let outF = if mIdx = 0 then 32 else 16
                let a = Array2D.init 2 32 (fun i j -> float32 (((i * 31 + j * 17 + layer * 5 + mIdx) % 13) - 6) / 64.0f)
                let b = Array2D.init outF 2 (fun o i -> float32 (((o * 7 + i * 11 + layer * 3 + mIdx) % 9) - 4) / 128.0f)
                use ta = torch.tensor(a)
                use tb = torch.tensor(b)
                Expect.isTrue (sameTensor w.A ta) $"{w.ModulePath} lora_A"
                Expect.isTrue (sameTensor w.B tb) $"{w.ModulePath} lora_B"
                use expected = tb.matmul(ta).mul((2.0).ToScalar())
                use delta = w.Delta()
                Expect.isLessThan (maxDiff delta expected) 1e-7 "ΔW = scale·B·A"
        }

        test "loading refuses bad adapters with the file and tensor or key in the message" {
            use dir = new TempDir()
            let src = fixture "peft/toy-qv-r2"
            let tensorsOf () =
                use f = SafetensorsFile.Open(Path.Combine(src, "adapter_model.safetensors"))
                [ for n in f.Names -> n, f.Load(n, copy = true) ]
            let variant (name: string) (tensors: (string * torch.Tensor) list) (editConfig: JsonObject -> unit) =
                let d = dir.File name
                Directory.CreateDirectory d |> ignore
                Safetensors.Save(Path.Combine(d, "adapter_model.safetensors"), tensors |> List.map (fun (n, t) -> Collections.Generic.KeyValuePair(n, t)))
                let json = JsonNode.Parse(File.ReadAllText(Path.Combine(src, "adapter_config.json"))).AsObject()
                editConfig json
                File.WriteAllText(Path.Combine(d, "adapter_config.json"), json.ToJsonString())
                d
            let loadError d =
                use m = toy 1L
                use adapters = new LoraAdapters(m)
                errorOf (fun () -> adapters.Load(d, "x"))
            let key = "base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight"
            let missing = variant "missing" (tensorsOf () |> List.filter (fun (n, _) -> n <> key)) ignore
            let msg = loadError missing
            Expect.stringContains msg "adapter_model.safetensors" "names the file"
            Expect.stringContains msg key "names the missing tensor"
            let extraKey = "base_model.model.model.layers.0.mlp.up_proj.lora_A.weight"
            let extra = variant "extra" (tensorsOf () @ [ extraKey, torch.zeros(2L, 32L) ]) ignore
            Expect.stringContains (loadError extra) extraKey "names the extra tensor"
            let shapeKey = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"
            let shaped = variant "shape" (tensorsOf () |> List.map (fun (n, t) -> if n = shapeKey then n, torch.zeros(2L, 31L) else n, t)) ignore
            let msg = loadError shaped
            Expect.stringContains msg shapeKey "names the mis-shaped tensor"
            Expect.stringContains msg "[2, 31]" "gives the shape"
            let dora = variant "dora" (tensorsOf ()) (fun j -> j["use_dora"] <- JsonValue.Create true)
            let msg = loadError dora
            Expect.stringContains msg "adapter_config.json" "names the config"
            Expect.stringContains msg "use_dora" "names the key"
            let unknown = variant "unknown" (tensorsOf ()) (fun j -> j["lora_magic"] <- JsonValue.Create 3)
            Expect.stringContains (loadError unknown) "lora_magic" "unknown key with a value"
            let empty = variant "unknown-empty" (tensorsOf ()) (fun j -> j["lora_future_option"] <- null)
            use m = toy 1L
            use adapters = new LoraAdapters(m)
            adapters.Load(empty, "ok") |> ignore
            let pissa = variant "pissa" (tensorsOf ()) (fun j -> j["init_lora_weights"] <- JsonValue.Create "pissa")
            Expect.stringContains (loadError pissa) "init_lora_weights" "unconverted PiSSA refused"
            let dora2 = variant "magnitude" (tensorsOf () @ [ "base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector", torch.ones(32L) ]) ignore
            Expect.stringContains (loadError dora2) "lora_magnitude_vector" "DoRA tensor refused"
            // An adapter that does not fit the base: its config claims another rank, or targets other modules.
            let rank = variant "rank" (tensorsOf ()) (fun j -> j["r"] <- JsonValue.Create 3)
            let msg = loadError rank
            Expect.stringContains msg "adapter_model.safetensors" "rank: names the file"
            Expect.stringContains msg "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight" "rank: names the tensor"
            Expect.stringContains msg "r = 3" "rank: says what the config claims"
            let targets = variant "targets" (tensorsOf ()) (fun j -> j["target_modules"] <- JsonArray(JsonValue.Create "k_proj"))
            let msg = loadError targets
            Expect.stringContains msg "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight" "targets: names the tensor"
            Expect.stringContains msg "does not target" "targets: says why"
            let bin = dir.File "bin"
            Directory.CreateDirectory bin |> ignore
            File.WriteAllBytes(Path.Combine(bin, "adapter_model.bin"), [| 0uy |])
            Expect.stringContains (loadError bin) "only adapter_model.safetensors" "pickle refused"
        }

        test "one reader: an adapter written by mmx opens for merging with the same ΔW, scale and PEFT keys" {
            use dir = new TempDir()
            use m = toy 1L
            use adapters = new LoraAdapters(m)
            adapters.Add("e", LoraConfig(R = 3, Alpha = 6.0, Dropout = 0.0, Init = LoraInit.Gaussian), 5L)
            perturb adapters "e" 6L
            adapters.Save("e", dir.File "a")
            use opened = PeftAdapter.Open(dir.File "a")
            Expect.equal opened.Rank 3 "rank"
            Expect.sequenceEqual (opened.Modules |> Seq.sort) (adapters.Modules "e" |> Seq.map (fun w -> w.ModulePath) |> Seq.sort) "modules"
            for w in adapters.Modules "e" do
                Expect.equal (opened.ScaleOf w.ModulePath) w.Scale $"{w.ModulePath}: scale"
                use ours = w.Delta()
                use read = opened.LoadDelta w.ModulePath
                Expect.isLessThan (maxDiff ours read) 1e-6 $"{w.ModulePath}: ΔW"
            // The PEFT-written fixture opens through the same reader.
            use fx = PeftAdapter.Open(fixture "peft/toy-qv-r2")
            Expect.equal fx.Rank 2 "fixture rank"
            Expect.equal (fx.ScaleOf "model.layers.0.self_attn.q_proj") 2.0 "fixture scale"
        }

        test "remove restores the plain layers; names and activation are checked" {
            use m = toy 1L
            use ids = tokens 8L
            use baseOut = logits m ids
            use adapters = new LoraAdapters(m)
            adapters.Add("e", cfg LoraInit.Random, 1L)
            perturb adapters "e" 2L
            adapters.SetActive "e"
            adapters.Merge "e"
            Expect.stringContains (errorOf (fun () -> adapters.Add("e", cfg LoraInit.Kaiming, 1L))) "already exists" "duplicate name"
            Expect.stringContains (errorOf (fun () -> adapters.SetActive "nope")) "nope" "unknown adapter"
            Expect.stringContains (errorOf (fun () -> adapters.TrainableParameters "e")) "merged" "no training while merged"
            adapters.Remove "e"
            for p in adapters.LinearPaths do Expect.isNull (adapters.Linear p).Adapter $"{p}: slot empty"
            use after = logits m ids
            Expect.isLessThan (maxDiff after baseOut) 1e-5 "base restored"
            Expect.isEmpty adapters.Active "removed from the active set"
            adapters.Add("k", cfg LoraInit.Kaiming, 1L)
            Expect.stringContains (errorOf (fun () -> adapters.TrainableParameters "k")) "not active" "inactive adapter cannot be trained"
        }
    ]
