/// `mmx export` (Core/Export): a model as a Hugging Face Qwen2.5-VL checkpoint (an adapter merged in) or as a PEFT
/// adapter; what loads back computes what was exported, the files have the Hub layout, bad input is one line.
module MMedExpert.Tests.ExportTests

open System
open System.Collections.Generic
open System.IO
open System.Text.Json
open System.Text.Json.Nodes
open Expecto
open TorchSharp
open MMedExpert.Core.Export
open MMedExpert.Core.IO
open MMedExpert.Core.Lora
open MMedExpert.Core.Model
open MMedExpert.Core.Model.Generation
open MMedExpert.Core.Model.Loading
open MMedExpert.Core.Tokenization
open MMedExpert.Core.Vision
open MMedExpert.Tests.TestKit

/// A tiny base (TinyVlm's tokenizer, tied embeddings) saved with its tokenizer, and an adapter on it (language model and
/// vision tower) with nonzero B saved as PEFT; the model stays in memory with the adapter active.
let private baseAndAdapter (dir: TempDir) =
    let tokenizerDir = dir.File "tokenizer"
    Directory.CreateDirectory tokenizerDir |> ignore
    TokenizerFile.Write(Path.Combine(tokenizerDir, "tokenizer.json"), TinyVlm.tokenizer.Value.Definition)
    let baseDir = dir.File "base"
    let model = TinyVlm.model 5L
    Qwen25VL.Save(model, baseDir, tokenizerDir)
    let adapters = new LoraAdapters(model)
    adapters.Add("e", LoraConfig(R = 2, Alpha = 4.0, Dropout = 0.0, Init = LoraInit.Gaussian, IncludeVision = true, BaseModelNameOrPath = baseDir), 3L)
    do
        use g = new torch.Generator(7UL)
        use _ = torch.no_grad ()
        for w in adapters.Modules "e" do w.B.add_(torch.randn(w.B.shape, generator = g).mul_((0.05).ToScalar())) |> ignore
    let adapterDir = dir.File "adapter"
    adapters.Save("e", adapterDir)
    baseDir, adapterDir, model, adapters

/// A chat prompt with one 56×56 image (4 image tokens): ids, pixel values, grid.
let private prompt (dir: TempDir) =
    let tokenizer = TinyVlm.tokenizer.Value
    let png = TinyVlm.writePng (dir.File "image.png") 3
    let processed = ImageProcessor().Process([| png |])
    let g = processed.GridThw[0]
    let messages = [ ChatMessage.User(ImagePart(int g[0], int g[1], int g[2]), TextPart "What is the most likely diagnosis?") ]
    let ids = Qwen25VLChat(tokenizer).Encode(messages, addGenerationPrompt = true).Ids
    ids, processed

let private logits (model: Qwen25VLForConditionalGeneration) (ids: int[]) (images: ProcessedImages) =
    use _ = torch.no_grad ()
    use input = torch.tensor(ids |> Array.map int64).view(1L, int64 ids.Length)
    use grid = images.GridThwTensor()
    model.forward(input, null, images.PixelValues, grid)

let private greedy (model: Qwen25VLForConditionalGeneration) (ids: int[]) (images: ProcessedImages) =
    use grid = images.GridThwTensor()
    let gen = Qwen25VLGenerator(model, fun ids -> String.Join(",", ids))
    let out = gen.Generate(PromptBatch([| ids :> IReadOnlyList<int> |], images.PixelValues, grid), GenerationOptions(MaxNewTokens = 8))
    out[0].TokenIds |> Seq.toList

let private maxAbsDiff (a: torch.Tensor) (b: torch.Tensor) = (a - b).abs().max().item<float32>() |> float

let private tensorNames (dir: string) =
    use c = Checkpoint.Open dir
    c.Names |> Set.ofSeq

let private json (path: string) = JsonNode.Parse(File.ReadAllText path).AsObject()

/// The string value of a key of a JSON file.
let private jsonString (path: string) (key: string) = string (json path).[key]

/// Same JSON value; numbers compared as numbers (1e-06 = 1E-06, 0 = 0.0).
let rec private sameJson (a: JsonNode) (b: JsonNode) =
    match a, b with
    | null, null -> true
    | (:? JsonObject as x), (:? JsonObject as y) -> x.Count = y.Count && x |> Seq.forall (fun kv -> y.ContainsKey kv.Key && sameJson kv.Value y[kv.Key])
    | (:? JsonArray as x), (:? JsonArray as y) -> x.Count = y.Count && Seq.forall2 sameJson x y
    | (:? JsonValue as x), (:? JsonValue as y) ->
        match x.GetValueKind(), y.GetValueKind() with
        | JsonValueKind.Number, JsonValueKind.Number -> x.GetValue<double>() = y.GetValue<double>()
        | _ -> x.ToJsonString() = y.ToJsonString()
    | _ -> false

/// One line on stderr, exit code 2, naming <paramref name="what"/>.
let private oneLineError (code, _: string, err: string) (what: string) =
    Expect.equal code 2 $"exit code 2: {err}"
    Expect.equal (err.Trim().Split('\n').Length) 1 $"one line: {err}"
    Expect.stringContains err what "names the input"

/// Nothing beside the output folder but what was there before (no temp folders left behind).
let private noLeftovers (parent: string) (expected: string list) =
    let names = Directory.GetFileSystemEntries parent |> Array.map Path.GetFileName |> Array.sort |> List.ofArray
    Expect.sequenceEqual names (List.sort expected) "no temporary folder left behind"

[<Tests>]
let tests =
    testSequenced <| testList "Export" [
        test "merged export: Hub names, no lora tensors, loads back with the adapter's logits (1e-5) and greedy ids; base-only export is exact" {
            use dir = new TempDir()
            let baseDir, adapterDir, model, adapters = baseAndAdapter dir
            use model = model
            use adapters = adapters
            let ids, images = prompt dir
            use images = images
            adapters.SetActive()
            use baseLogits = logits model ids images
            let baseIds = greedy model ids images
            adapters.SetActive "e"
            use adapterLogits = logits model ids images
            let adapterIds = greedy model ids images
            Expect.isGreaterThan (maxAbsDiff baseLogits adapterLogits) 1e-3 "the adapter changes the model (else the test could not fail)"

            let baseOut, mergedOut = dir.File "export-base", dir.File "export-merged"
            let code, _, err = runMmx [ "export"; "--model"; baseDir; "--out"; baseOut ]
            Expect.equal code 0 $"mmx export base: {err}"
            let code, stdout, err = runMmx [ "export"; "--model"; adapterDir; "--out"; mergedOut; "--json" ]
            Expect.equal code 0 $"mmx export merged: {err}"
            Expect.stringContains stdout "\"kind\": \"merged\"" "reports a merged export"

            use fromBase = ModelLoader.Load baseOut
            Expect.isNull fromBase.Lora "a checkpoint, no adapter"
            use y = logits fromBase.Model ids images
            Expect.isTrue (sameTensor y baseLogits) "base-only export: exactly the base's logits"
            use fromMerged = ModelLoader.Load mergedOut
            Expect.isNull fromMerged.Lora "merged: a checkpoint, no adapter"
            use y = logits fromMerged.Model ids images
            Expect.isLessThan (maxAbsDiff y adapterLogits) 1e-5 "merged export: the adapter's logits"
            Expect.sequenceEqual (greedy fromMerged.Model ids images) adapterIds "merged export: the adapter's greedy ids"
            Expect.sequenceEqual (greedy fromBase.Model ids images) baseIds "base export: the base's greedy ids"

            let names = tensorNames mergedOut
            Expect.equal names (tensorNames baseDir) "the base checkpoint's names"
            Expect.isFalse (names |> Set.exists (fun n -> n.ToLowerInvariant().Contains "lora")) "no lora tensors"
            Expect.isFalse (names.Contains "lm_head.weight") "tied: no lm_head"
            Expect.isTrue (names |> Set.forall (fun n -> n.StartsWith "visual." || n.StartsWith "model.")) "original Hub scheme"

            // config.json: the strict reader accepts every key; the 4.50 layout.
            let config = Qwen25VLConfig.Load mergedOut
            Expect.equal config.VocabSize model.Config.VocabSize "same shape"
            let c = json (Path.Combine(mergedOut, "config.json"))
            Expect.equal (string c["model_type"]) "qwen2_5_vl" "model_type"
            Expect.equal (c["architectures"].ToJsonString()) "[\"Qwen2_5_VLForConditionalGeneration\"]" "architectures"
            Expect.equal (string c["torch_dtype"]) "float32" "torch_dtype of what was written"
            Expect.isFalse (c.ContainsKey "text_config") "text fields at the top level"
            Expect.sequenceEqual (c |> Seq.map (fun kv -> kv.Key)) (c |> Seq.map (fun kv -> kv.Key) |> Seq.sort) "keys sorted as save_pretrained"

            // Tokenizer, processor and generation files.
            let tokenizer = TinyVlm.tokenizer.Value
            for file in [ "tokenizer.json"; "tokenizer_config.json"; "chat_template.json"; "preprocessor_config.json"; "generation_config.json" ] do
                Expect.isTrue (File.Exists(Path.Combine(mergedOut, file))) $"{file} written"
            let exported = Qwen2Tokenizer.FromFile(Path.Combine(mergedOut, "tokenizer.json"))
            Expect.equal exported.EosTokenId (Nullable tokenizer.ImEnd) "eos_token <|im_end|>"
            Expect.equal exported.PadTokenId (Nullable tokenizer.EndOfText) "pad_token <|endoftext|>"
            let tc = json (Path.Combine(mergedOut, "tokenizer_config.json"))
            Expect.equal (string tc["tokenizer_class"]) "Qwen2Tokenizer" "tokenizer_class"
            Expect.equal (string tc["chat_template"]) QwenChatTemplate.Jinja "chat template in tokenizer_config.json"
            Expect.equal (jsonString (Path.Combine(mergedOut, "chat_template.json")) "chat_template") QwenChatTemplate.Jinja "chat_template.json"
            let decoder = tc["added_tokens_decoder"].AsObject()
            for t in tokenizer.AddedTokens do
                let entry = decoder.[string t.Id].AsObject()
                Expect.equal (string entry.["content"]) t.Content $"added token {t.Id}"
            Expect.isNull tc["bos_token"] "no bos token (as the Hub file)"
            let gc = json (Path.Combine(mergedOut, "generation_config.json"))
            Expect.equal (gc["eos_token_id"].ToJsonString()) $"[{tokenizer.ImEnd},{tokenizer.EndOfText}]" "stops at <|im_end|> and <|endoftext|>"
            Expect.equal (gc["pad_token_id"].GetValue<int>()) tokenizer.EndOfText "pad"
            Expect.equal config.EosTokenId (Nullable tokenizer.ImEnd) "config eos consistent with the tokenizer"
            Expect.equal config.ImageTokenId tokenizer.ImagePad "config image token consistent with the tokenizer"
            let pp = ImageProcessorConfig.Load(Path.Combine(mergedOut, "preprocessor_config.json"))
            Expect.equal pp.MinPixels ImageProcessorConfig.Default.MinPixels "processor settings"
            Expect.equal (jsonString (Path.Combine(mergedOut, "preprocessor_config.json")) "processor_class") "Qwen2_5_VLProcessor" "processor_class"
            noLeftovers dir.Path [ "tokenizer"; "base"; "adapter"; "image.png"; "export-base"; "export-merged" ]
        }

        test "--adapter export: PEFT files only, base_model_name_or_path the base, loads back with exactly the same logits" {
            use dir = new TempDir()
            let baseDir, adapterDir, model, adapters = baseAndAdapter dir
            use model = model
            use adapters = adapters
            let ids, images = prompt dir
            use images = images
            adapters.SetActive "e"
            use expected = logits model ids images
            let out = dir.File "export-adapter"
            let code, _, err = runMmx [ "export"; "--model"; adapterDir; "--out"; out; "--adapter" ]
            Expect.equal code 0 $"mmx export --adapter: {err}"
            Expect.sequenceEqual (Directory.GetFiles out |> Array.map Path.GetFileName |> Array.sort) [ "adapter_config.json"; "adapter_model.safetensors" ] "PEFT files, nothing else"
            let ac = json (Path.Combine(out, "adapter_config.json"))
            Expect.equal (string ac["base_model_name_or_path"]) (Path.GetFullPath baseDir) "names the base"
            Expect.equal (string ac["peft_type"]) "LORA" "peft_type"
            use adapter = PeftAdapter.Open out
            Expect.isTrue (tensorNames (Path.Combine(out, "adapter_model.safetensors")) |> Set.forall (fun n -> n.StartsWith "base_model.model.")) "PEFT key names"
            Expect.isTrue (adapter.Modules |> Seq.exists (fun m -> m.StartsWith "visual.")) "the vision modules too"
            use loaded = ModelLoader.Load out
            use y = logits loaded.Model ids images
            Expect.isTrue (sameTensor y expected) "the adapter's logits exactly"
            // A checkpoint is not an adapter.
            oneLineError (runMmx [ "export"; "--model"; baseDir; "--out"; dir.File "x"; "--adapter" ]) baseDir
            Expect.isFalse (Directory.Exists(dir.File "x")) "nothing written"
        }

        test "the chat template, rendered by a Jinja subset, gives exactly what Qwen25VLChat renders" {
            let chat = Qwen25VLChat(TinyVlm.tokenizer.Value)
            let image = ImagePart(1, 2, 2) // one image token, as the template writes it before the processor expands it
            let cases =
                [ [ ChatMessage.User "Hello" ], false,
                  "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n"
                  [ ChatMessage.System "Be brief."; ChatMessage.User "Hi"; ChatMessage.Assistant "Hello." ], false,
                  "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n"
                  [ ChatMessage.User(image, TextPart "What is shown?") ], true,
                  "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>What is shown?<|im_end|>\n<|im_start|>assistant\n"
                  [ ChatMessage.System "S"; ChatMessage.User(TextPart "Compare ", image, TextPart " and ", image); ChatMessage.Assistant "Same."; ChatMessage.User "Sure?" ], true,
                  "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nCompare <|vision_start|><|image_pad|><|vision_end|> and <|vision_start|><|image_pad|><|vision_end|><|im_end|>\n<|im_start|>assistant\nSame.<|im_end|>\n<|im_start|>user\nSure?<|im_end|>\n<|im_start|>assistant\n"
                  [ ChatMessage.User(image, image, TextPart "Both?"); ChatMessage.Assistant "Yes." ], false,
                  "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|><|vision_start|><|image_pad|><|vision_end|>Both?<|im_end|>\n<|im_start|>assistant\nYes.<|im_end|>\n" ]
            // A conversation as transformers hands it to the template: content parts as {"type": ...} dicts, or, for
            // plain text, the string itself (both forms are in the template).
            let part (p: ChatPart) =
                match p with
                | :? TextPart as t -> JinjaSubset.object [ "type", box "text"; "text", box t.Text ]
                | _ -> JinjaSubset.object [ "type", box "image" ]
            let messages (asStrings: bool) (ms: ChatMessage list) =
                JinjaSubset.list [ for m in ms ->
                                    let content =
                                        match List.ofSeq m.Content with
                                        | [ :? TextPart as t ] when asStrings -> box t.Text
                                        | parts -> JinjaSubset.list (parts |> List.map part)
                                    JinjaSubset.object [ "role", box m.Role; "content", content ] ]
            for ms, generation, expected in cases do
                Expect.equal (chat.Render(ms, generation)) expected $"Qwen25VLChat: {ms.Length} message(s)"
                for asStrings in [ false; true ] do
                    let rendered = JinjaSubset.render QwenChatTemplate.Jinja [ "messages", messages asStrings ms; "add_generation_prompt", box generation ]
                    Expect.equal rendered expected $"the template: {ms.Length} message(s), string content {asStrings}"
            // add_vision_id numbers the images (a template option Qwen25VLChat does not have; shown to be rendered).
            let numbered = JinjaSubset.render QwenChatTemplate.Jinja [ "messages", messages false [ ChatMessage.User(image, image) ]; "add_vision_id", box true ]
            Expect.stringContains numbered "Picture 1: <|vision_start|><|image_pad|><|vision_end|>Picture 2: " "add_vision_id"
        }

        test "export of the hf-parity fixture reproduces its tensors, names and config (skipped without ../shared)" {
            match sharedDir |> Option.map (fun s -> Path.Combine(s, "fixtures", "hf-parity", "qwen25vl-tiny", "checkpoint")) with
            | Some source when Directory.Exists source ->
                use dir = new TempDir()
                let out = dir.File "export"
                let code, _, err = runMmx [ "export"; "--model"; source; "--out"; out ]
                Expect.equal code 0 $"mmx export: {err}"
                Expect.equal (tensorNames out) (tensorNames source) "every Hub name of the fixture, no other"
                use a = Checkpoint.Open source
                use b = Checkpoint.Open out
                for name in a.Names do
                    Expect.equal (b.Info name).DType (a.Info name).DType $"{name}: dtype"
                    use x = a.Load(name)
                    use y = b.Load(name)
                    Expect.isTrue (sameTensor x y) $"{name}: same values"
                Expect.isTrue (b.Contains "lm_head.weight") "untied: lm_head written"
                let expected, actual = json (Path.Combine(source, "config.json")), json (Path.Combine(out, "config.json"))
                for kv in expected do
                    Expect.isTrue (actual.ContainsKey kv.Key && sameJson kv.Value actual[kv.Key]) $"config.json {kv.Key}: {kv.Value.ToJsonString()} vs {actual[kv.Key]}"
                let extra = actual |> Seq.map (fun kv -> kv.Key) |> Seq.filter (expected.ContainsKey >> not) |> List.ofSeq
                Expect.isEmpty extra "no key transformers 4.50 did not write"
                let expected, actual = json (Path.Combine(source, "generation_config.json")), json (Path.Combine(out, "generation_config.json"))
                for key in [ "bos_token_id"; "eos_token_id"; "transformers_version" ] do
                    Expect.isTrue (sameJson expected[key] actual[key]) $"generation_config.json {key}"
                let expected, actual = json (Path.Combine(source, "preprocessor_config.json")), json (Path.Combine(out, "preprocessor_config.json"))
                for kv in expected do
                    Expect.isTrue (sameJson kv.Value actual[kv.Key]) $"preprocessor_config.json {kv.Key}"
            | _ -> skiptest "../shared/fixtures/hf-parity/qwen25vl-tiny absent"
        }

        test "bad input is one line naming it, and nothing is left behind" {
            use dir = new TempDir()
            let baseDir, adapterDir, model, adapters = baseAndAdapter dir
            adapters.Dispose()
            model.Dispose()
            let out = dir.File "out"
            Directory.CreateDirectory out |> ignore
            File.WriteAllText(Path.Combine(out, "keep.txt"), "mine")
            oneLineError (runMmx [ "export"; "--model"; baseDir; "--out"; out ]) out
            Expect.equal (File.ReadAllText(Path.Combine(out, "keep.txt"))) "mine" "the folder is untouched"
            let neither = dir.File "neither"
            Directory.CreateDirectory neither |> ignore
            oneLineError (runMmx [ "export"; "--model"; neither; "--out"; dir.File "out2" ]) neither
            oneLineError (runMmx [ "export"; "--model"; dir.File "missing"; "--out"; dir.File "out2" ]) (dir.File "missing")
            oneLineError (runMmx [ "export"; "--model"; baseDir; "--out"; Path.Combine(baseDir, "inside"); "--force" ]) "overlaps"
            oneLineError (runMmx [ "export"; "--model"; baseDir; "--out"; dir.File "out2"; "--dtype"; "fp8" ]) "fp8"
            Expect.isTrue (File.Exists(Path.Combine(baseDir, "model.safetensors"))) "the input is untouched"
            noLeftovers dir.Path [ "tokenizer"; "base"; "adapter"; "out"; "neither" ]
            // --force replaces it, once the export is complete.
            let code, _, err = runMmx [ "export"; "--model"; adapterDir; "--out"; out; "--force" ]
            Expect.equal code 0 $"--force: {err}"
            Expect.isFalse (File.Exists(Path.Combine(out, "keep.txt"))) "replaced"
            Expect.isTrue (File.Exists(Path.Combine(out, "model.safetensors"))) "the export"
            noLeftovers dir.Path [ "tokenizer"; "base"; "adapter"; "out"; "neither" ]
        }

        test "a run folder exports its main merged model; --run names its experts; a run without a merged model is one line" {
            use dir = new TempDir()
            let baseDir, adapterDir, model, adapters = baseAndAdapter dir
            adapters.Dispose()
            model.Dispose()
            let run = dir.File "run"
            let config = MMedExpert.Cli.Pipeline.PipelineConfig()
            Directory.CreateDirectory(Path.Combine(run, "stages")) |> ignore
            File.WriteAllText(Path.Combine(run, "config.json"), config.ToJson())
            oneLineError (runMmx [ "export"; "--model"; run; "--out"; dir.File "none" ]) "no main merged model"
            let struct (method, from) = MMedExpert.Cli.Pipeline.Stages.MergeStage.Merges(config) |> Seq.head
            let main = Path.Combine(run, "merged", $"{method}-{from}")
            // The main merged model: here the adapter merged by export itself; a second merge method beside it is not chosen.
            let code, _, err = runMmx [ "export"; "--model"; adapterDir; "--out"; main ]
            Expect.equal code 0 $"mmx export into the run: {err}"
            let code, _, err = runMmx [ "export"; "--model"; baseDir; "--out"; Path.Combine(run, "merged", "zz_other-gba") ]
            Expect.equal code 0 $"mmx export into the run: {err}"
            let code, stdout, err = runMmx [ "export"; "--model"; run; "--out"; dir.File "from-run"; "--json" ]
            Expect.equal code 0 $"mmx export RUN: {err}"
            use doc = JsonDocument.Parse stdout
            Expect.equal (doc.RootElement.GetProperty("base_dir").GetString()) (Path.GetFullPath main) "the run's main merged model"
            Expect.equal (tensorNames (dir.File "from-run")) (tensorNames main) "exported"
            let expert = Path.Combine(run, "experts", "pediatrics", "gba")
            Directory.CreateDirectory(Path.GetDirectoryName expert) |> ignore
            Directory.Move(adapterDir, expert)
            let code, stdout, err = runMmx [ "export"; "--run"; run; "--model"; "pediatrics/gba"; "--out"; dir.File "expert"; "--adapter"; "--json" ]
            Expect.equal code 0 $"mmx export --run RUN --model NAME: {err}"
            use doc = JsonDocument.Parse stdout
            Expect.equal (doc.RootElement.GetProperty("adapter_dir").GetString()) (Path.GetFullPath expert) "the expert inside the run"
        }

        test "models/medsynth-base exports in bf16 (auto), also sharded, and mmx generate answers with the export as with the base" {
            use dir = new TempDir()
            let source = Path.Combine(repoRoot, "models", "medsynth-base")
            let out, sharded = dir.File "medsynth", dir.File "medsynth-sharded"
            let code, _, err = runMmx [ "export"; "--model"; source; "--out"; out ]
            Expect.equal code 0 $"mmx export: {err}"
            Expect.equal (jsonString (Path.Combine(out, "config.json")) "torch_dtype") "bfloat16" "auto keeps bf16"
            Expect.sequenceEqual (File.ReadAllBytes(Path.Combine(out, "model.safetensors"))) (File.ReadAllBytes(Path.Combine(source, "model.safetensors"))) "the same weights, byte for byte"
            let code, _, err = runMmx [ "export"; "--model"; source; "--out"; sharded; "--max-shard-mb"; "2"; "--dtype"; "fp32" ]
            Expect.equal code 0 $"mmx export sharded: {err}"
            Expect.isTrue (File.Exists(Path.Combine(sharded, "model.safetensors.index.json"))) "an index"
            Expect.isGreaterThan (Directory.GetFiles(sharded, "model-*-of-*.safetensors").Length) 1 "several shards"
            Expect.equal (jsonString (Path.Combine(sharded, "config.json")) "torch_dtype") "float32" "fp32 asked"
            let answer model =
                let code, stdout, err = runMmx [ "generate"; "--model"; model; "--prompt"; "What is shown?"; "--max-new-tokens"; "8"; "--dtype"; "fp32"; "--json" ]
                Expect.equal code 0 $"mmx generate {model}: {err}"
                use doc = JsonDocument.Parse stdout
                doc.RootElement.GetProperty("token_ids").EnumerateArray() |> Seq.map (fun e -> e.GetInt32()) |> List.ofSeq
            let expected = answer source
            Expect.isNonEmpty expected "the base answers"
            Expect.sequenceEqual (answer out) expected "the export answers as the base"
            Expect.sequenceEqual (answer sharded) expected "the sharded export answers as the base"
        }
    ]
