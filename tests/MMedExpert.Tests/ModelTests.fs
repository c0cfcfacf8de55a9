module MMedExpert.Tests.ModelTests

open System
open System.IO
open System.Text.Json.Nodes
open Expecto
open TorchSharp
open MMedExpert.Core.IO
open MMedExpert.Core.Model
open MMedExpert.Core.Model.Vision
open MMedExpert.Core.Model.Text
open MMedExpert.Core.Model.Generation

// A tiny model with a small vocabulary: special tokens renumbered inside it.
let private imagePad, visionStart, visionEnd, imEnd = 500, 498, 499, 511

let tinyConfig () =
    Qwen25VLConfig(
        VocabSize = 512, HiddenSize = 64, IntermediateSize = 128, NumHiddenLayers = 2, NumAttentionHeads = 4,
        NumKeyValueHeads = 2, MropeSection = [| 2; 3; 3 |], TieWordEmbeddings = false, MaxPositionEmbeddings = 4096,
        ImageTokenId = imagePad, VideoTokenId = 501, VisionStartTokenId = visionStart, VisionEndTokenId = visionEnd,
        BosTokenId = Nullable 510, EosTokenId = Nullable imEnd, PadTokenId = Nullable(),
        Vision = VisionConfig.Tiny(64), Source = "tiny test config").Validate()

let private tinyModel seed = Qwen25VL.CreateRandom(tinyConfig (), seed)

/// Runs f, expecting an exception of type 'e, and returns it.
let private throws<'e when 'e :> exn> (f: unit -> unit) : 'e =
    let caught =
        try
            f ()
            None
        with
        | :? 'e as e -> Some e
    match caught with
    | Some e -> e
    | None -> failtestf "expected %s" typeof<'e>.Name

let private longs (data: int64[]) (shape: int64[]) = torch.tensor(dataArray = data, dimensions = ReadOnlySpan<int64>(shape))

let private maxAbsDiff (a: torch.Tensor) (b: torch.Tensor) = (a - b).abs().max().item<float32>() |> float

/// One image of grid 1×4×4 patches = 4 merged tokens, random pixel rows.
let private image seed =
    let g = new torch.Generator(uint64 seed)
    let pixels = torch.randn([| 16L; 1176L |], generator = g)
    let grid = longs ([| 1L; 4L; 4L |]) [| 1L; 3L |]
    pixels, grid

let private withImage (before: int list) (after: int list) = before @ [ visionStart ] @ List.replicate 4 imagePad @ [ visionEnd ] @ after

let private ids (xs: int list) = xs :> Collections.Generic.IReadOnlyList<int>

let private logitsOf (model: Qwen25VLForConditionalGeneration) (tokens: int list) (pixels: torch.Tensor option) (grid: torch.Tensor option) =
    use _ = torch.no_grad ()
    let input = longs (tokens |> List.map int64 |> Array.ofList) [| 1L; int64 tokens.Length |]
    model.forward(input, null, Option.toObj pixels, Option.toObj grid)

[<Tests>]
let tests =
    testList "Model" [
        test "config: every preset validates and has the published shapes for 3b/7b" {
            for name in Qwen25VLConfig.PresetNames do Qwen25VLConfig.Preset(name) |> ignore
            let c7 = Qwen25VLConfig.Preset "7b"
            Expect.equal (c7.HiddenSize, c7.NumHiddenLayers, c7.NumAttentionHeads, c7.NumKeyValueHeads, c7.IntermediateSize, c7.VocabSize)
                         (3584, 28, 28, 4, 18944, 152064) "7b shape"
            Expect.isFalse c7.TieWordEmbeddings "7b untied"
            let c3 = Qwen25VLConfig.Preset "3b"
            Expect.equal (c3.HiddenSize, c3.NumHiddenLayers, c3.NumAttentionHeads, c3.NumKeyValueHeads, c3.IntermediateSize, c3.VocabSize)
                         (2048, 36, 16, 2, 11008, 151936) "3b shape"
            Expect.isTrue c3.TieWordEmbeddings "3b tied"
        }

        test "config: top-level and text_config layouts parse to the same values, and write back" {
            let flat = Qwen25VLConfig.Preset("7b").ToJson()
            let root = JsonNode.Parse(flat).AsObject()
            let text = JsonObject()
            for key in [ "vocab_size"; "hidden_size"; "intermediate_size"; "num_hidden_layers"; "num_attention_heads"; "num_key_value_heads"; "rope_theta"; "rms_norm_eps"; "rope_scaling" ] do
                let v = root[key]
                root.Remove key |> ignore
                text[key] <- v
            root["text_config"] <- text
            let nested = Qwen25VLConfig.Parse(root.ToJsonString(), "nested.json")
            let a = Qwen25VLConfig.Parse(flat, "flat.json")
            for c in [ a; nested ] do
                Expect.equal (c.HiddenSize, c.NumKeyValueHeads, c.VocabSize, c.MropeSection, c.RopeTheta, c.ImageTokenId, c.VisionStartTokenId)
                             (3584, 4, 152064, [| 16; 24; 24 |], 1e6, 151655, 151652) c.Source
            // Writing a nested file keeps text_config in step with the top level.
            let again = Qwen25VLConfig.Parse(nested.ToJson(), "rewritten.json")
            Expect.equal again.HiddenSize 3584 "rewritten"
            Expect.equal (JsonNode.Parse(nested.ToJson()).["text_config"].["hidden_size"].GetValue<int>()) 3584 "text_config kept"
        }

        test "config: a published 3B config.json (vision keys left at the reference defaults) reads with the 3B shapes" {
            // The shape of Qwen/Qwen2.5-VL-3B-Instruct's config.json: vision_config lists only what differs from the defaults.
            let json = """{
              "architectures": ["Qwen2_5_VLForConditionalGeneration"], "bos_token_id": 151643, "eos_token_id": 151645,
              "hidden_act": "silu", "hidden_size": 2048, "image_token_id": 151655, "intermediate_size": 11008,
              "max_position_embeddings": 128000, "model_type": "qwen2_5_vl", "num_attention_heads": 16, "num_hidden_layers": 36,
              "num_key_value_heads": 2, "rms_norm_eps": 1e-06,
              "rope_scaling": {"mrope_section": [16, 24, 24], "rope_type": "default", "type": "default"},
              "rope_theta": 1000000.0, "tie_word_embeddings": true, "torch_dtype": "bfloat16", "video_token_id": 151656,
              "vision_config": {"hidden_size": 1280, "in_chans": 3, "model_type": "qwen2_5_vl", "out_hidden_size": 2048,
                                "spatial_patch_size": 14, "tokens_per_second": 2, "torch_dtype": "bfloat16"},
              "vision_end_token_id": 151653, "vision_start_token_id": 151652, "vision_token_id": 151654, "vocab_size": 151936 }"""
            let c = Qwen25VLConfig.Parse(json, "3b/config.json")
            let p = Qwen25VLConfig.Preset "3b"
            Expect.equal (c.HiddenSize, c.NumHiddenLayers, c.NumKeyValueHeads, c.TieWordEmbeddings, c.EosTokenId) (p.HiddenSize, p.NumHiddenLayers, p.NumKeyValueHeads, true, Nullable 151645) "text"
            Expect.equal (c.Vision.Depth, c.Vision.HiddenSize, c.Vision.NumHeads, c.Vision.IntermediateSize, c.Vision.OutHiddenSize, List.ofSeq c.Vision.FullAttentionBlockIndexes)
                         (32, 1280, 16, 3420, 2048, [ 7; 15; 23; 31 ]) "vision tower of the 3B model"
        }

        test "config: a missing required key is named" {
            for key in [ "hidden_size"; "vocab_size"; "num_hidden_layers" ] do
                let root = JsonNode.Parse(Qwen25VLConfig.Preset("tiny").ToJson()).AsObject()
                root.Remove key |> ignore
                let e = throws<ModelConfigException> (fun () -> Qwen25VLConfig.Parse(root.ToJsonString(), "cfg.json") |> ignore)
                Expect.stringContains e.Message key "names the key"
                Expect.stringContains e.Message "cfg.json" "names the file"
            let root = JsonNode.Parse(Qwen25VLConfig.Preset("tiny").ToJson()).AsObject()
            root["rope_scaling"].AsObject().Remove "mrope_section" |> ignore
            let e = throws<ModelConfigException> (fun () -> Qwen25VLConfig.Parse(root.ToJsonString(), "cfg.json") |> ignore)
            Expect.stringContains e.Message "mrope_section" "names mrope_section"
        }

        test "config: an unknown key (top level or text_config) is named with its file; transformers' inert keys are not" {
            let fresh () = JsonNode.Parse(Qwen25VLConfig.Preset("tiny").ToJson()).AsObject()
            for key in [ "quantization_config"; "num_hiden_layers" ] do
                let root = fresh ()
                root[key] <- JsonValue.Create 1
                let e = throws<ModelConfigException> (fun () -> Qwen25VLConfig.Parse(root.ToJsonString(), "cfg.json") |> ignore)
                Expect.stringContains e.Message $"'{key}'" "names the key"
                Expect.stringContains e.Message "cfg.json" "names the file"
            let nested = fresh ()
            nested["text_config"] <- JsonObject(dict [ "rope_typo", JsonValue.Create 1 :> JsonNode ])
            let e = throws<ModelConfigException> (fun () -> Qwen25VLConfig.Parse(nested.ToJsonString(), "cfg.json") |> ignore)
            Expect.stringContains e.Message "'text_config.rope_typo'" "names the nested key"
            let inert = fresh ()
            for key in [ "torch_dtype"; "transformers_version"; "output_attentions"; "_name_or_path" ] do inert[key] <- JsonValue.Create "x"
            Expect.equal (Qwen25VLConfig.Parse(inert.ToJsonString(), "cfg.json")).HiddenSize (Qwen25VLConfig.Preset("tiny").HiddenSize) "bookkeeping keys read"
        }

        test "M-RoPE with text positions equals standard 1D RoPE" {
            let c = tinyConfig ()
            let rope = MultimodalRotaryEmbedding(c.HeadDim, c.RopeTheta, c.MropeSection)
            let seq = 9L
            let pos1d = torch.arange(seq, dtype = torch.int64).view(1L, seq)
            let struct (cos, sin) = rope.Compute(pos1d.unsqueeze(0).expand(3L, 1L, seq), torch.float32)
            // Standard RoPE: angle[p, j] = p · theta^(−2(j mod d/2)/d)
            let d = int64 c.HeadDim
            let invFreq = torch.pow(torch.tensor(float32 c.RopeTheta), torch.arange(0L, d, 2L, dtype = torch.int64).to_type(torch.float32) / float32 d).reciprocal()
            let angles = pos1d.view(seq, 1L).to_type(torch.float32) * torch.cat([| invFreq; invFreq |], 0L).view(1L, d)
            Expect.isLessThan (maxAbsDiff (cos.view(seq, d)) (angles.cos())) 1e-6 "cos"
            Expect.isLessThan (maxAbsDiff (sin.view(seq, d)) (angles.sin())) 1e-6 "sin"
            // With distinct streams, each dimension follows its section's stream (t: pairs 0-1, h: 2-4, w: 5-7, both halves).
            let streams = longs ([| 3L; 5L; 7L |]) [| 3L; 1L; 1L |]
            let struct (cos3, _) = rope.Compute(streams, torch.float32)
            let inv = invFreq.data<float32>().ToArray()
            let c3 = cos3.view(d).data<float32>().ToArray()
            for j in 0 .. int d - 1 do
                let pair = j % (int d / 2)
                let p = if pair < 2 then 3.0 elif pair < 5 then 5.0 else 7.0
                Expect.floatClose Accuracy.medium (float c3[j]) (Math.Cos(p * float inv[pair])) $"dim {j}"
        }

        test "GetRopeIndex on a hand-computed prompt with one image, plain and left-padded" {
            let c = tinyConfig ()
            // t0 t1 <vs> img×4 (2×2 merged grid) <ve> t2
            let tokens = [ 5L; 6L; int64 visionStart; int64 imagePad; int64 imagePad; int64 imagePad; int64 imagePad; int64 visionEnd; 7L ]
            let grid = longs ([| 1L; 4L; 4L |]) [| 1L; 3L |]
            let struct (pos, delta) = RopeIndex.Compute(c, longs (Array.ofList tokens) [| 1L; 9L |], grid, null)
            let rows = [| for s in 0L .. 2L -> pos[s, 0L].data<int64>().ToArray() |]
            Expect.equal rows[0] [| 0L; 1L; 2L; 3L; 3L; 3L; 3L; 5L; 6L |] "temporal"
            Expect.equal rows[1] [| 0L; 1L; 2L; 3L; 3L; 4L; 4L; 5L; 6L |] "height"
            Expect.equal rows[2] [| 0L; 1L; 2L; 3L; 4L; 3L; 4L; 5L; 6L |] "width"
            Expect.equal (delta.data<int64>().ToArray()) [| 7L - 9L |] "delta = max + 1 - length"
            // Left padding by 2: padding gets position 1, tokens keep theirs, delta counts the padding.
            let padded = longs (Array.append [| 0L; 0L |] (Array.ofList tokens)) [| 1L; 11L |]
            let mask = longs (Array.append [| 0L; 0L |] (Array.create 9 1L)) [| 1L; 11L |]
            let struct (pos2, delta2) = RopeIndex.Compute(c, padded, grid, mask)
            Expect.equal (pos2[1, 0L].data<int64>().ToArray()) [| 1L; 1L; 0L; 1L; 2L; 3L; 3L; 4L; 4L; 5L; 6L |] "padded height"
            Expect.equal (delta2.data<int64>().ToArray()) [| 7L - 11L |] "padded delta"
        }

        test "KV-cached decoding gives the logits of full recomputation (padded batch with an image)" {
            use model = tinyModel 1L
            let pixels, grid = image 2
            let prompts = [ withImage [ 3; 4 ] [ 9; 10; 11 ]; [ 20; 21; 22 ] ]
            let continuation = [ [ 30; 31; 32; 33 ]; [ 40; 41; 42; 43 ] ]
            use _ = torch.no_grad ()
            let struct (idsT, mask, _) = PromptBatch.LeftPad(prompts |> List.map ids |> Array.ofList, 0)
            let promptLen = idsT.shape[1]
            use cache = new KvCache(model.Config, 2L, promptLen + 8L, torch.float32)
            let struct (hidden, deltas) = model.Prefill(idsT, mask, pixels, grid, cache)
            let mutable attention = mask
            let mutable stepLogits = [ model.Logits(hidden.narrow(1L, promptLen - 1L, 1L)) ]
            for step in 0 .. 3 do
                let feed = longs ([| int64 (continuation[0][step]); int64 (continuation[1][step]) |]) [| 2L; 1L |]
                attention <- torch.cat([| attention; torch.ones(2L, 1L, dtype = torch.int64) |], 1L)
                stepLogits <- stepLogits @ [ model.Logits(model.DecodeStep(feed, deltas, cache, attention)) ]
            // Full recomputation of each sample alone, no padding, no cache.
            for b in 0 .. 1 do
                let full = prompts[b] @ continuation[b]
                let px, gr = if b = 0 then Some pixels, Some grid else None, None
                let logits = logitsOf model full px gr
                let n = prompts[b].Length
                for step in 0 .. 4 do
                    let expected = logits[0L, int64 (n - 1 + step)]
                    let actual = stepLogits[step][int64 b, 0L]
                    Expect.isLessThan (maxAbsDiff actual expected) 1e-4 $"sample {b} step {step}"
        }

        test "a padded batch gives each sample's own logits and greedy outputs" {
            use model = tinyModel 3L
            let pixels, grid = image 4
            let a = withImage [ 3 ] [ 8; 9 ]
            let b = [ 12; 13; 14; 15; 16; 17; 18; 19; 20; 21; 22; 23 ]
            let gen = Qwen25VLGenerator(model, fun ids -> String.Join(",", ids))
            let options = GenerationOptions(MaxNewTokens = 6, StopTokenIds = [| imEnd |])
            let batch = gen.Generate(PromptBatch([| ids a; ids b |], pixels, grid), options)
            let aloneA = gen.Generate(PromptBatch([| ids a |], pixels, grid), options)[0]
            let aloneB = gen.Generate(PromptBatch([| ids b |]), options)[0]
            Expect.sequenceEqual batch[0].TokenIds aloneA.TokenIds "sample a tokens"
            Expect.sequenceEqual batch[1].TokenIds aloneB.TokenIds "sample b tokens"
            Expect.equal batch[0].Text aloneA.Text "text via the decode delegate"
            for (x, y) in Seq.zip (Seq.append batch[0].LogProbs batch[1].LogProbs) (Seq.append aloneA.LogProbs aloneB.LogProbs) do
                Expect.floatClose { absolute = 1e-4; relative = 1e-4 } (float x) (float y) "log-probs"
            // Logits of the whole padded batch against each sample alone.
            use _ = torch.no_grad ()
            let struct (idsT, mask, padded) = PromptBatch.LeftPad([| ids a; ids b |], 0)
            Expect.isTrue padded "the batch is padded"
            let batchLogits = model.forward(idsT, mask, pixels, grid)
            let la = logitsOf model a (Some pixels) (Some grid)
            let lb = logitsOf model b None None
            let pad = int64 (b.Length - a.Length)
            Expect.isLessThan (maxAbsDiff (batchLogits[0L].narrow(0L, pad, int64 a.Length)) la[0L]) 1e-4 "sample a logits"
            Expect.isLessThan (maxAbsDiff batchLogits[1L] lb[0L]) 1e-4 "sample b logits"
        }

        test "ScoreCompletions gives the log-probs generation reported for the same tokens" {
            use model = tinyModel 5L
            let pixels, grid = image 6
            let prompts = PromptBatch([| ids (withImage [ 3 ] [ 4 ]); ids [ 50; 51; 52; 53; 54; 55; 56; 57; 58 ] |], pixels, grid)
            let gen = Qwen25VLGenerator(model)
            let out = gen.Generate(prompts, GenerationOptions(MaxNewTokens = 7, Temperature = 1.3, TopK = 50, TopP = 0.95, Seed = 11L, StopTokenIds = [| imEnd |]))
            let scored = gen.ScoreCompletions(prompts, out |> Seq.map (fun s -> s.TokenIds) |> Array.ofSeq)
            for b in 0 .. 1 do
                Expect.equal scored[b].Length out[b].TokenIds.Count "one value per token"
                for (x, y) in Seq.zip scored[b] out[b].LogProbs do
                    Expect.floatClose { absolute = 1e-4; relative = 1e-4 } (float x) (float y) $"sample {b}"
            // The same seed draws the same tokens; another seed (almost surely) not all the same.
            let again = gen.Generate(prompts, GenerationOptions(MaxNewTokens = 7, Temperature = 1.3, TopK = 50, TopP = 0.95, Seed = 11L, StopTokenIds = [| imEnd |]))
            Expect.sequenceEqual again[1].TokenIds out[1].TokenIds "reproducible from the seed"
        }

        test "top-k = 1 sampling equals greedy decoding" {
            use model = tinyModel 7L
            let gen = Qwen25VLGenerator(model)
            let p = PromptBatch.TextOnly(ids [ 1; 2; 3; 4 ])
            let greedy = gen.Generate(p, GenerationOptions(MaxNewTokens = 5, StopTokenIds = [||]))
            let topk1 = gen.Generate(p, GenerationOptions(MaxNewTokens = 5, Temperature = 0.7, TopK = 1, Seed = 3L, StopTokenIds = [||]))
            Expect.sequenceEqual topk1[0].TokenIds greedy[0].TokenIds "same tokens"
            Expect.equal greedy[0].Finish FinishReason.Length "ran to max_new_tokens"
            Expect.equal greedy[0].TokenIds.Count 5 "5 tokens"
        }

        test "save → load gives the same outputs; both naming schemes load to the same model; bf16 loads" {
            use dir = new TestKit.TempDir()
            use model = tinyModel 8L
            let pixels, grid = image 9
            let prompt = withImage [ 3 ] [ 4; 5 ]
            let expected = logitsOf model prompt (Some pixels) (Some grid)
            File.WriteAllText(dir.File "tokenizer.json", "{}")
            let original, newer = dir.File "original", dir.File "newer"
            Qwen25VL.Save(model, original, companionsFrom = dir.Path)
            Qwen25VL.Save(model, newer, newerScheme = true, maxShardBytes = 200_000L)
            Expect.isTrue (File.Exists(Path.Combine(original, "tokenizer.json"))) "companion file copied"
            Expect.isTrue (File.Exists(Path.Combine(newer, Checkpoint.IndexFileName))) "sharded save has an index"
            use ck = Checkpoint.Open newer
            Expect.isTrue (ck.Names |> Seq.exists (fun n -> n.StartsWith "model.language_model.layers.")) "newer scheme names"
            Expect.isTrue (ck.Names |> Seq.exists (fun n -> n.StartsWith "model.visual.")) "newer scheme vision names"
            for d in [ original; newer ] do
                use loaded = Qwen25VL.Load d
                let actual = logitsOf loaded prompt (Some pixels) (Some grid)
                Expect.equal (maxAbsDiff actual expected) 0.0 $"same logits from {Path.GetFileName d}"
            use half = Qwen25VL.Load(original, torch.bfloat16)
            Expect.isTrue (half.parameters() |> Seq.forall (fun p -> p.dtype = torch.bfloat16)) "every parameter converted to bf16 on load"
            let halfLogits = (logitsOf half prompt (Some pixels) (Some grid)).to_type(torch.float32)
            Expect.isLessThan (maxAbsDiff halfLogits expected) 0.05 "bf16 logits close to fp32"
        }

        test "strict loading names a wrong shape (both shapes), unexpected and missing tensors" {
            use dir = new TestKit.TempDir()
            use model = tinyModel 10L
            let state = Qwen25VLWeights.StateToSave(model, false)
            let write (folder: string) (tensors: Collections.Generic.KeyValuePair<string, torch.Tensor> seq) =
                Directory.CreateDirectory folder |> ignore
                model.Config.Save(Path.Combine(folder, "config.json"))
                Checkpoint.Save(folder, tensors |> Array.ofSeq)
            let kv (k: string) (v: torch.Tensor) = Collections.Generic.KeyValuePair(k, v)
            let wrong = dir.File "wrong"
            write wrong (state |> Seq.map (fun p -> if p.Key = "model.norm.weight" then kv p.Key (torch.ones(63L)) else p))
            let e = throws<ModelWeightsException> (fun () -> Qwen25VL.Load wrong |> ignore)
            Expect.stringContains e.Message "model.norm.weight" "names the tensor"
            Expect.stringContains e.Message "[63]" "checkpoint shape"
            Expect.stringContains e.Message "[64]" "model shape"
            let extra = dir.File "extra"
            write extra (Seq.append state [ kv "model.layers.9.mlp.up_proj.weight" (torch.ones(2L)) ])
            let e = throws<ModelWeightsException> (fun () -> Qwen25VL.Load extra |> ignore)
            Expect.stringContains e.Message "model.layers.9.mlp.up_proj.weight" "lists the unexpected tensor"
            let missing = dir.File "missing"
            write missing (state |> Seq.filter (fun p -> p.Key <> "lm_head.weight"))
            let e = throws<ModelWeightsException> (fun () -> Qwen25VL.Load missing |> ignore)
            Expect.stringContains e.Message "lm_head.weight" "names the missing parameter"
        }
    
        test "mmx generate answers a prompt about an image with a tiny checkpoint in HF layout" {
            use dir = new TestKit.TempDir()
            // Real Qwen token ids (the reduced fixture tokenizer keeps them), so the tiny model uses the full vocabulary.
            use model = Qwen25VL.CreateRandom(Qwen25VLConfig.Preset "tiny", 12L)
            let companions = dir.File "companions"
            Directory.CreateDirectory companions |> ignore
            File.Copy(TestKit.fixture "qwen2-tokenizer/tokenizer.json", Path.Combine(companions, "tokenizer.json"))
            let checkpoint = dir.File "tiny"
            Qwen25VL.Save(model, checkpoint, companionsFrom = companions)
            let image = TestKit.fixture "preprocess/inputs/scene_120x90.png"
            let args = [ "generate"; "--model"; checkpoint; "--image"; image; "--prompt"; "What is shown?"; "--max-new-tokens"; "4"
                         "--temperature"; "0.8"; "--seed"; "5"; "--json" ]
            let code, out, err = TestKit.runMmx args
            Expect.equal code 0 $"exit code (stderr: {err})"
            let result = JsonNode.Parse(out)
            let ids = result["token_ids"].AsArray() |> Seq.map (fun n -> n.GetValue<int>()) |> Array.ofSeq
            let logProbs = result["log_probs"].AsArray() |> Seq.map (fun n -> n.GetValue<float32>()) |> Array.ofSeq
            Expect.isTrue (ids.Length >= 1 && ids.Length <= 4) "1 to 4 new tokens"
            Expect.equal logProbs.Length ids.Length "one log-prob per token"
            Expect.isTrue (logProbs |> Array.forall (fun lp -> lp <= 0.0f && not (Single.IsNaN lp))) "log-probs are log-probabilities"
            // 120×90 → resized to 112×84 → grid 1×6×8 patches → 12 image tokens in the prompt.
            Expect.isGreaterThan (result["prompt_tokens"].GetValue<int>()) 12 "prompt holds the image tokens"
            // The same seed gives the same answer; the scored log-probs of that answer are the reported ones.
            let code2, out2, _ = TestKit.runMmx args
            Expect.equal code2 0 "second run"
            let again = JsonNode.Parse(out2)
            Expect.equal (again["token_ids"].ToJsonString()) (result["token_ids"].ToJsonString()) "reproducible"
            // A folder without tokenizer.json is an input error naming the file.
            let bare = dir.File "bare"
            Qwen25VL.Save(model, bare)
            let code3, _, err3 = TestKit.runMmx [ "generate"; "--model"; bare; "--prompt"; "hi" ]
            Expect.equal code3 2 "input error exit code"
            Expect.stringContains err3 "tokenizer.json" "names the missing file"
        }
    ]
