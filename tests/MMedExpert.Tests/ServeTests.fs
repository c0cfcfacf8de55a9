/// `mmx serve` (Serving/Server): the slot cache's KvCache moves, then the OpenAI-compatible server on loopback over
/// models/medsynth-base: shapes of the endpoints, greedy equality with the in-process generator (single and concurrent
/// mixed-length requests), sampling with n and seed, logprobs, streaming, LoRA adapters by name, errors that leave the
/// server serving, and a small concurrent load with nothing dropped.
module MMedExpert.Tests.ServeTests

open System
open System.IO
open System.Net.Http
open System.Text
open System.Text.Json
open System.Text.Json.Nodes
open System.Threading.Tasks
open Expecto
open TorchSharp
open MMedExpert.Core.Lora
open MMedExpert.Core.Model
open MMedExpert.Core.Model.Generation
open MMedExpert.Core.Model.Loading
open MMedExpert.Core.Model.Text
open MMedExpert.Core.Tokenization
open MMedExpert.Core.Training
open MMedExpert.Core.Vision
open MMedExpert.Serving.Server
open MMedExpert.Tests.TestKit

/// The embedded pretrained base (a real small Qwen2.5-VL, so greedy outputs vary from token to token).
let private medSynthBase () = Path.Combine(repoRoot, "models", "medsynth-base")

/// Greedy generations of the in-process path (VisionChatEncoder + Qwen25VLGenerator, batch 1) for (image, text, max tokens),
/// with the PEFT adapter folder active when one is given.
let private referenceWith (baseDir: string) (adapterDir: string option) (prompts: (string option * string * int) list) =
    use loaded = ModelLoader.Load(ModelReference(baseDir), ModelLoadOptions())
    use lora = new LoraAdapters(loaded.Model)
    adapterDir |> Option.iter (fun dir -> lora.Load(dir, "x") |> ignore; lora.SetActive "x")
    let tokenizer = Qwen2Tokenizer.FromFile(Path.Combine(baseDir, "tokenizer.json"))
    let encoder = VisionChatEncoder(tokenizer, ImageProcessor.Load(Path.Combine(baseDir, "preprocessor_config.json")))
    let generator = Qwen25VLGenerator(loaded.Model, fun ids -> tokenizer.Decode(ids, skipSpecial = true))
    [ for image, text, maxTokens in prompts ->
        let sample = VisionChatSample((match image with Some p -> [| p |] | None -> [||]), text)
        let batch = encoder.Prompts [ sample ]
        let options = GenerationOptions(MaxNewTokens = maxTokens, Temperature = 0.0, StopTokenIds = encoder.StopTokenIds,
                                        SuppressTokenIds = encoder.SuppressTokenIds)
        generator.Generate(batch, options).[0] ]

let private reference (baseDir: string) prompts = referenceWith baseDir None prompts

/// An adapter that changes the outputs (Gaussian A, B perturbed with this seed), saved as PEFT in <paramref name="dir"/>.
let private saveAdapter (baseDir: string) (dir: string) (seed: int64) =
    use m = Qwen25VL.Load baseDir
    use adapters = new LoraAdapters(m)
    adapters.Add("e", LoraConfig(R = 2, Alpha = 4.0, Dropout = 0.0, Init = LoraInit.Gaussian, BaseModelNameOrPath = baseDir), seed)
    use g = new torch.Generator(uint64 (seed + 4L))
    use _ = torch.no_grad ()
    for w in adapters.Modules "e" do w.B.add_(torch.randn(w.B.shape, generator = g).mul_((0.5).ToScalar())) |> ignore
    adapters.Save("e", dir)

let private userMessage (image: string option) (text: string) : obj =
    let parts : obj list =
        [ match image with
          | Some url -> yield box {| ``type`` = "image_url"; image_url = {| url = url |} |}
          | None -> ()
          yield box {| ``type`` = "text"; text = text |} ]
    box {| role = "user"; content = parts |}

let private post (client: HttpClient) (path: string) (body: string) =
    task {
        use content = new StringContent(body, Encoding.UTF8, "application/json")
        use! response = client.PostAsync(path, content)
        let! text = response.Content.ReadAsStringAsync()
        return int response.StatusCode, text
    }

let private postJson (client: HttpClient) (path: string) (body: obj) = post client path (JsonSerializer.Serialize body)

let private run (t: Task<'a>) = t.GetAwaiter().GetResult()

/// Token ids of a choice rendered with return_tokens_as_token_ids.
let private tokenIds (choice: JsonNode) =
    [ for e in choice.["logprobs"].["content"].AsArray() ->
        let token = e.["token"].GetValue<string>()
        Expect.isTrue (token.StartsWith "token_id:") $"token as id: {token}"
        int (token.Substring "token_id:".Length) ]

let private logprobValues (choice: JsonNode) = [ for e in choice.["logprobs"].["content"].AsArray() -> e.["logprob"].GetValue<float>() ]

let private greedyRequest model image text (maxTokens: int) : obj =
    box {| model = model; messages = [ userMessage image text ]; temperature = 0.0; max_tokens = maxTokens
           logprobs = true; return_tokens_as_token_ids = true |}

let private questions = [ for q, _, _, _ in TinyVlm.items -> q ]

let private expectError (status, body: string) expectedStatus what =
    Expect.equal status expectedStatus $"{what}: status ({body})"
    let error = (JsonNode.Parse(body)).["error"]
    Expect.isNotNull error $"{what}: an error object"
    for key in [ "message"; "type"; "param"; "code" ] do
        Expect.isTrue (error.AsObject().ContainsKey key) $"{what}: error.{key}"
    Expect.isFalse (body.Contains "   at ") $"{what}: no stack trace"
    error

[<Tests>]
let tests =
    testSequenced <| testList "Serve" [
        test "KvCache: rows copied at an offset, gathered, decoded through a view of the first rows" {
            let config = TinyVlm.config ()
            use source = new KvCache(config, 1L, 3L, torch.ScalarType.Float32)
            let k = torch.randn(1L, int64 config.NumKeyValueHeads, 3L, int64 config.HeadDim)
            for layer in 0 .. config.NumHiddenLayers - 1 do source.Append(layer, k, k.neg()) |> ignore
            source.Advance 3L
            use cache = new KvCache(config, 2L, 8L, torch.ScalarType.Float32)
            cache.SetLength 6L
            cache.CopyRowFrom(source, 0L, 1L, 2L)
            use view = cache.Rows 2L
            let zeroK = torch.zeros(2L, int64 config.NumKeyValueHeads, 1L, int64 config.HeadDim)
            let struct (keys, _) = view.Append(0, zeroK, zeroK)
            Expect.equal keys.shape[2] 7L "view reads the filled prefix and the new position"
            Expect.isTrue (sameTensor (keys.narrow(0, 1L, 1L).narrow(2, 2L, 3L)) k) "row 1 holds the prompt at columns 2..4"
            Expect.equal (keys.narrow(0, 0L, 1L).abs().sum().item<float32>()) 0f "row 0 untouched"
            cache.GatherRow(1L, [| 2L; 3L; 4L |], 0L)
            cache.SetLength 3L
            let struct (keys, values) = cache.Append(0, torch.zeros(2L, int64 config.NumKeyValueHeads, 1L, int64 config.HeadDim), torch.zeros(2L, int64 config.NumKeyValueHeads, 1L, int64 config.HeadDim))
            Expect.isTrue (sameTensor (keys.narrow(0, 1L, 1L).narrow(2, 0L, 3L)) k) "keys gathered to columns 0..2"
            Expect.isTrue (sameTensor (values.narrow(0, 1L, 1L).narrow(2, 0L, 3L)) (k.neg())) "values moved with them"
            Expect.throwsT<ArgumentException> (fun () -> cache.GatherRow(1L, [| 3L; 2L |], 0L)) "columns out of order are refused"
            Expect.throwsT<ArgumentOutOfRangeException> (fun () -> cache.CopyRowFrom(source, 0L, 0L, 6L)) "a copy past the capacity is refused"
        }

        test "local image files: inside --allowed-local-media-path only; any on a loopback host without it; none on a network host" {
            use inside = new TempDir()
            use outside = new TempDir()
            let ok = TinyVlm.writePng (inside.File "in.png") 1
            let far = TinyVlm.writePng (outside.File "out.png") 2
            let status (f: unit -> obj) =
                try
                    f () |> ignore
                    200
                with :? ApiError as e -> e.Status
            let load url root = fun () -> box (ImageSource.Load(url, "messages[0].content[0].image_url.url", root))
            Expect.equal (status (load ok (Some inside.Path |> Option.toObj))) 200 "a file inside the folder"
            Expect.equal (status (load (Uri(ok).AbsoluteUri) inside.Path)) 200 "a file:// URL inside the folder"
            Expect.equal (status (load far inside.Path)) 400 "a file outside the folder"
            Expect.equal (status (load (Path.Combine(inside.Path, "..", Path.GetFileName outside.Path, "out.png")) inside.Path)) 400 "no escape through '..'"
            Expect.equal (status (load ok null)) 400 "no local file at all"
            let dataUrl = "data:image/png;base64," + Convert.ToBase64String(File.ReadAllBytes far)
            Expect.equal (status (load dataUrl null)) 200 "data URLs always"
            let options host media = ServeOptions(ModelDir = medSynthBase (), Host = host, AllowedLocalMediaPath = media)
            Expect.equal ((options "127.0.0.1" null).LocalMediaRoot) "/" "loopback without the option: anywhere"
            Expect.isNull ((options "0.0.0.0" null).LocalMediaRoot) "a network host without the option: nowhere"
            Expect.equal ((options "0.0.0.0" inside.Path).LocalMediaRoot) (Path.GetFullPath inside.Path) "the option wins"
        }

        test "the server (models/medsynth-base): models, images, greedy equality, sampling, logprobs, streaming, adapters, errors, concurrent load" {
            use dir = new TempDir()
            let baseDir = medSynthBase ()
            let image = TinyVlm.writePng (dir.File "scan.png") 3
            let image2 = TinyVlm.writePng (dir.File "scan2.png") 4
            // Mixed lengths: with or without an image, different questions and max_tokens.
            let cases =
                [ Some image, questions[0], 12
                  None, questions[1], 5
                  Some image2, questions[2], 20
                  None, questions[3], 9
                  Some image, questions[1], 16
                  Some image2, "What is shown?", 7 ]
            let expected = reference baseDir cases

            // An adapter that changes the outputs (B perturbed), saved as PEFT.
            let adapterDir = dir.File "adapter"
            saveAdapter baseDir adapterDir 3L

            let options = ServeOptions(ModelDir = baseDir, Port = 0, MaxBatch = 6, MaxModelLen = 160, ServedModelName = "tiny")
            let server = run (OpenAiServer.StartAsync options)
            try
                use client = new HttpClient(BaseAddress = server.BaseAddress, Timeout = TimeSpan.FromMinutes 3.0)
                Expect.equal server.BaseAddress.Host "127.0.0.1" "loopback"

                // /v1/models
                let models = JsonNode.Parse(run (client.GetStringAsync "/v1/models"))
                Expect.equal (models.["object"].GetValue<string>()) "list" "a list"
                let first = models.["data"].[0]
                Expect.equal (first.["id"].GetValue<string>()) "tiny" "the base under its served name"
                Expect.equal (first.["owned_by"].GetValue<string>()) "mmx" "owned_by"

                // Greedy equality, one request at a time; the image as a file path and as a data URL.
                let check (i: int) (status: int, body: string) =
                    Expect.equal status 200 $"case {i}: {body}"
                    let response = JsonNode.Parse body
                    let choice = response.["choices"].[0]
                    let want = expected[i]
                    let wantIds = if want.Finish = FinishReason.Stop then want.TokenIds |> Seq.take (want.TokenIds.Count - 1) |> List.ofSeq else List.ofSeq want.TokenIds
                    Expect.equal (tokenIds choice) wantIds $"case {i}: the in-process greedy tokens"
                    Expect.equal (choice.["message"].["content"].GetValue<string>()) want.Text $"case {i}: same text"
                    Expect.equal (choice.["finish_reason"].GetValue<string>()) (if want.Finish = FinishReason.Stop then "stop" else "length") $"case {i}: finish reason"
                    for got, wanted in List.zip (logprobValues choice) (List.ofSeq want.LogProbs |> List.take wantIds.Length) do
                        // Batched rows round differently from batch 1 (a few 1e-6 in fp32); the tokens above are exact.
                        Expect.floatClose { absolute = 1e-4; relative = 1e-4 } (float got) (float wanted) $"case {i}: logprob"
                    Expect.equal (response.["usage"].["completion_tokens"].GetValue<int>()) want.TokenIds.Count $"case {i}: completion tokens, a stop token included"
                    response
                let img, question, maxTokens = cases[0]
                let single = check 0 (run (postJson client "/v1/chat/completions" (greedyRequest "tiny" img question maxTokens)))
                Expect.equal (single.["object"].GetValue<string>()) "chat.completion" "object"
                Expect.isGreaterThan (single.["usage"].["prompt_tokens"].GetValue<int>()) 0 "prompt tokens"
                let dataUrl = "data:image/png;base64," + Convert.ToBase64String(File.ReadAllBytes image)
                check 0 (run (postJson client "/v1/chat/completions" (greedyRequest "tiny" (Some dataUrl) question maxTokens))) |> ignore
                check 0 (run (postJson client "/v1/chat/completions" (greedyRequest "tiny" (Some(Uri(image).AbsoluteUri)) question maxTokens))) |> ignore

                // Every case alone first.
                cases |> List.iteri (fun i (img, text, maxTokens) -> check i (run (postJson client "/v1/chat/completions" (greedyRequest "tiny" img text maxTokens))) |> ignore)

                // vLLM's ignore_eos: a case the model ends early runs to max_tokens, through its stop token.
                match cases |> List.indexed |> List.tryFind (fun (i, _) -> expected[i].Finish = FinishReason.Stop) with
                | Some (i, (img, text, maxTokens)) ->
                    let body = JsonNode.Parse(JsonSerializer.Serialize(greedyRequest "tiny" img text maxTokens)).AsObject()
                    body["ignore_eos"] <- JsonValue.Create true
                    let status, answer = run (post client "/v1/chat/completions" (body.ToJsonString()))
                    Expect.equal status 200 answer
                    let r = JsonNode.Parse answer
                    Expect.equal (r.["usage"].["completion_tokens"].GetValue<int>()) maxTokens $"case {i} with ignore_eos: exactly max_tokens"
                    Expect.equal (r.["choices"].[0].["finish_reason"].GetValue<string>()) "length" $"case {i} with ignore_eos: ends on length"
                | None -> failtest "no case ends on a stop token before max_tokens (the ignore_eos check needs one)"
                // Concurrent mixed-length requests: each equals its batch-1 generation.
                let concurrent =
                    cases |> List.mapi (fun i (img, text, maxTokens) -> postJson client "/v1/chat/completions" (greedyRequest "tiny" img text maxTokens))
                let results = run (Task.WhenAll concurrent)
                results |> Array.iteri (fun i r -> check i r |> ignore)

                // Sampling: n = 3 gives three choices; the same seed gives the same outputs.
                let sampled seed =
                    let body = box {| model = "tiny"; messages = [ userMessage (Some image) questions[0] ]; n = 3; temperature = 1.0; top_p = 0.9
                                      seed = seed; max_tokens = 10; logprobs = true; top_logprobs = 2 |}
                    let status, text = run (postJson client "/v1/chat/completions" body)
                    Expect.equal status 200 text
                    JsonNode.Parse text
                let a, b, c = sampled 5, sampled 5, sampled 6
                Expect.equal (a.["choices"].AsArray().Count) 3 "three choices"
                Expect.equal [ for ch in a.["choices"].AsArray() -> ch.["index"].GetValue<int>() ] [ 0; 1; 2 ] "indices"
                let texts (r: JsonNode) = [ for ch in r.["choices"].AsArray() -> ch.["message"].["content"].GetValue<string>(), logprobValues ch ]
                Expect.equal (texts a) (texts b) "same seed, same outputs"
                Expect.notEqual (texts a) (texts c) "another seed, other outputs"
                let entry = a.["choices"].[0].["logprobs"].["content"].[0]
                for key in [ "token"; "logprob"; "bytes"; "top_logprobs" ] do Expect.isTrue (entry.AsObject().ContainsKey key) $"logprobs entry has {key}"
                Expect.equal (entry.["top_logprobs"].AsArray().Count) 2 "top_logprobs = 2"
                let bytes = [| for x in entry.["bytes"].AsArray() -> byte (x.GetValue<int>()) |]
                Expect.equal (Encoding.UTF8.GetString bytes) (entry.["token"].GetValue<string>()) "bytes spell the token"

                // Streaming: the deltas concatenate to the plain content; usage chunk; [DONE] last.
                let plainStatus, plainBody = run (postJson client "/v1/chat/completions" (greedyRequest "tiny" (Some image2) questions[2] 20))
                Expect.equal plainStatus 200 plainBody
                let plain = (JsonNode.Parse(plainBody)).["choices"].[0].["message"].["content"].GetValue<string>()
                let streamBody = box {| model = "tiny"; messages = [ userMessage (Some image2) questions[2] ]; temperature = 0.0; max_tokens = 20
                                        stream = true; stream_options = {| include_usage = true |} |}
                let status, sse = run (postJson client "/v1/chat/completions" streamBody)
                Expect.equal status 200 sse
                let events = sse.Split("\n\n", StringSplitOptions.RemoveEmptyEntries) |> Array.map (fun e -> e.Trim())
                Expect.isTrue (events |> Array.forall (fun e -> e.StartsWith "data: ")) "every event is data: ..."
                Expect.equal events[events.Length - 1] "data: [DONE]" "ends with [DONE]"
                let chunks = events[.. events.Length - 2] |> Array.map (fun e -> JsonNode.Parse(e.Substring 6))
                Expect.equal (chunks[0].["choices"].[0].["delta"].["role"].GetValue<string>()) "assistant" "first delta has the role"
                let content =
                    chunks |> Array.collect (fun ch -> [| for c in ch.["choices"].AsArray() do
                                                          match c.["delta"].["content"] with
                                                          | null -> ()
                                                          | d -> yield d.GetValue<string>() |]) |> String.concat ""
                Expect.equal content plain "stream = plain content"
                let withChoices = chunks |> Array.filter (fun ch -> ch.["choices"].AsArray().Count > 0)
                Expect.isNotNull (withChoices[withChoices.Length - 1].["choices"].[0].["finish_reason"]) "last choice chunk has a finish_reason"
                let last = chunks[chunks.Length - 1]
                Expect.equal (last.["choices"].AsArray().Count) 0 "usage chunk has no choices"
                Expect.isGreaterThan (last.["usage"].["total_tokens"].GetValue<int>()) 0 "usage chunk"

                // Adapters: load, a request under its name differs from the base, unload, then 404.
                let baseAnswer = single.["choices"].[0]
                let status, text = run (postJson client "/v1/load_lora_adapter" {| lora_name = "expert"; lora_path = adapterDir |})
                Expect.equal status 200 $"load: {text}"
                expectError (run (postJson client "/v1/load_lora_adapter" {| lora_name = "expert"; lora_path = adapterDir |})) 400 "loading a name twice" |> ignore
                let listed = (JsonNode.Parse(run (client.GetStringAsync "/v1/models"))).["data"].AsArray()
                let expert = listed |> Seq.find (fun m -> m.["id"].GetValue<string>() = "expert")
                Expect.equal (expert.["parent"].GetValue<string>()) "tiny" "adapter's parent is the base"
                let status, text = run (postJson client "/v1/chat/completions" (greedyRequest "expert" img question maxTokens))
                Expect.equal status 200 text
                Expect.notEqual (logprobValues ((JsonNode.Parse(text)).["choices"].[0])) (logprobValues baseAnswer) "the adapter changes the outputs"
                // Base and adapter requests at once (decoded in one batch): each still gets its own model's answer.
                let mixed = run (Task.WhenAll [ postJson client "/v1/chat/completions" (greedyRequest "expert" img question maxTokens)
                                                postJson client "/v1/chat/completions" (greedyRequest "tiny" img question maxTokens) ])
                let mixedExpert, aloneExpert = (JsonNode.Parse(snd mixed[0])).["choices"].[0], (JsonNode.Parse(text)).["choices"].[0]
                Expect.equal (tokenIds mixedExpert) (tokenIds aloneExpert) "the adapter's request in a mixed batch: its greedy tokens"
                // A shared batch rounds differently from batch 1 (as for the base requests above).
                for got, wanted in List.zip (logprobValues mixedExpert) (logprobValues aloneExpert) do
                    Expect.floatClose { absolute = 1e-4; relative = 1e-4 } (float got) (float wanted) "the adapter's request in a mixed batch: logprob"
                check 0 mixed[1] |> ignore
                let status, text = run (postJson client "/v1/unload_lora_adapter" {| lora_name = "expert" |})
                Expect.equal status 200 $"unload: {text}"
                let err = expectError (run (postJson client "/v1/chat/completions" (greedyRequest "expert" img question maxTokens))) 404 "unloaded adapter"
                Expect.equal (err.["code"].GetValue<string>()) "model_not_found" "code"
                expectError (run (postJson client "/v1/unload_lora_adapter" {| lora_name = "expert" |})) 404 "unloading an unknown name" |> ignore

                // Errors, each followed by a request that succeeds.
                let stillServing what = check 1 (run (postJson client "/v1/chat/completions" (let i, t, m = cases[1] in greedyRequest "tiny" i t m))) |> ignore
                expectError (run (post client "/v1/chat/completions" "{\"model\": \"tiny\", \"messages\": [")) 400 "malformed JSON" |> ignore
                stillServing "after malformed JSON"
                expectError (run (postJson client "/v1/chat/completions" (greedyRequest "tiny" (Some "data:image/png;base64,AAAAAAAA") question 4))) 400 "bad data URL" |> ignore
                stillServing "after a bad data URL"
                expectError (run (postJson client "/v1/chat/completions" (greedyRequest "tiny" (Some(dir.File "missing.png")) question 4))) 400 "missing image file" |> ignore
                expectError (run (postJson client "/v1/chat/completions" (greedyRequest "nope" None question 4))) 404 "unknown model" |> ignore
                stillServing "after an unknown model"
                expectError (run (postJson client "/v1/chat/completions" (greedyRequest "tiny" None question 1000))) 422 "max_tokens over max_model_len" |> ignore
                stillServing "after max_tokens over max_model_len"
                expectError (run (postJson client "/v1/chat/completions" {| model = "tiny"; messages = [ userMessage None question ]; n = 99 |})) 422 "n over max batch" |> ignore
                expectError (run (postJson client "/v1/chat/completions" {| model = "tiny"; messages = [ userMessage None question ]; top_p = 0.0 |})) 422 "top_p 0" |> ignore
                expectError (run (postJson client "/v1/chat/completions" {| model = "tiny"; messages = "hi" |})) 400 "messages not an array" |> ignore
                // Over the 32 MiB limit: refused from its Content-Length (Expect: 100-continue, so the client never sends it).
                let oversized =
                    task {
                        use request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
                        request.Headers.ExpectContinue <- Nullable true
                        request.Content <- new ByteArrayContent(Array.create (33 <<< 20) (byte 'a'))
                        use! response = client.SendAsync request
                        let! body = response.Content.ReadAsStringAsync()
                        return int response.StatusCode, body
                    }
                expectError (run oversized) 413 "body over 32 MiB" |> ignore
                stillServing "after the errors"

                // A small concurrent load: 12 requests from 4 clients, nothing dropped, each its greedy answer.
                let clientRuns =
                    [ for c in 0 .. 3 ->
                        task {
                            let outcomes = ResizeArray()
                            for r in 0 .. 2 do
                                let i = (c * 3 + r) % cases.Length
                                let img, text, maxTokens = cases[i]
                                let! outcome = postJson client "/v1/chat/completions" (greedyRequest "tiny" img text maxTokens)
                                outcomes.Add((i, outcome))
                            return outcomes.ToArray()
                        } ]
                let outcomes = run (Task.WhenAll clientRuns) |> Array.concat
                Expect.equal outcomes.Length 12 "12 answers"
                for i, outcome in outcomes do check i outcome |> ignore
            finally
                server.StopAsync().GetAwaiter().GetResult()
        }

        test "mixed adapters: base and two adapters decoded in the same steps, each request its own model's greedy answer" {
            use dir = new TempDir()
            let baseDir = medSynthBase ()
            let image = TinyVlm.writePng (dir.File "scan.png") 3
            let dirA, dirB = dir.File "adapter-a", dir.File "adapter-b"
            saveAdapter baseDir dirA 3L
            saveAdapter baseDir dirB 5L
            let prompts = [ Some image, questions[0], 16; None, questions[1], 12 ]
            let models = [ "tiny", None; "ea", Some dirA; "eb", Some dirB ]
            let references = dict [ for name, adapter in models -> name, referenceWith baseDir adapter prompts ]
            let expected name (i: int) = references[name].[i]
            let wantIds (g: GeneratedSequence) =
                if g.Finish = FinishReason.Stop then g.TokenIds |> Seq.take (g.TokenIds.Count - 1) |> List.ofSeq else List.ofSeq g.TokenIds
            Expect.notEqual (wantIds (expected "ea" 0)) (wantIds (expected "tiny" 0)) "adapter a changes the greedy answer"
            Expect.notEqual (wantIds (expected "eb" 0)) (wantIds (expected "ea" 0)) "adapter b differs from a"

            let options = ServeOptions(ModelDir = baseDir, Port = 0, MaxBatch = 6, MaxModelLen = 160, ServedModelName = "tiny",
                                       Adapters = readOnlyDict [ "ea", dirA; "eb", dirB ])
            let server = run (OpenAiServer.StartAsync options)
            try
                use client = new HttpClient(BaseAddress = server.BaseAddress, Timeout = TimeSpan.FromMinutes 3.0)
                let requests = [ for name, _ in models do for i in 0 .. prompts.Length - 1 -> name, i ]
                // Hold the engine (a control action that waits) until all six requests are queued, so they are admitted
                // together and every decode step has rows for all three models.
                use gate = new System.Threading.ManualResetEventSlim(false)
                let held = server.Engine.Invoke(fun () -> gate.Wait(); true)
                let struct (stepsBefore, _, _, mixedBefore) = server.Engine.Statistics
                let answers =
                    [ for name, i in requests ->
                        let img, text, maxTokens = prompts[i]
                        postJson client "/v1/chat/completions" (greedyRequest name img text maxTokens) ]
                let deadline = DateTime.UtcNow.AddMinutes 1.0
                while server.Engine.Queued < requests.Length && DateTime.UtcNow < deadline do Threading.Thread.Sleep 10
                Expect.equal server.Engine.Queued requests.Length "all requests queued behind the held engine"
                gate.Set()
                Expect.isTrue (run held) "engine released"
                let results = run (Task.WhenAll answers)
                let struct (stepsAfter, _, _, mixedAfter) = server.Engine.Statistics
                let mutable generated = 0
                for (name, i), (status, body) in List.zip requests (List.ofArray results) do
                    Expect.equal status 200 $"{name} prompt {i}: {body}"
                    let choice = (JsonNode.Parse body).["choices"].[0]
                    let want = expected name i
                    Expect.equal (tokenIds choice) (wantIds want) $"{name} prompt {i}: its model's batch-1 greedy tokens"
                    for got, wanted in List.zip (logprobValues choice) (List.ofSeq want.LogProbs |> List.take (wantIds want).Length) do
                        Expect.floatClose { absolute = 1e-4; relative = 1e-4 } (float got) (float wanted) $"{name} prompt {i}: logprob"
                    generated <- generated + want.TokenIds.Count
                let steps = stepsAfter - stepsBefore
                Expect.isGreaterThan (mixedAfter - mixedBefore) 0L "decode steps mixed the base and adapters"
                // Each sequence's first token comes from its prefill, the rest from decode steps shared by all six.
                Expect.isLessThan steps (int64 (generated - requests.Length)) "fewer decode steps than the tokens they decoded"
                // The adapters still unload (no sequence uses them any more) and the other one keeps serving.
                let status, text = run (postJson client "/v1/unload_lora_adapter" {| lora_name = "ea" |})
                Expect.equal status 200 $"unload: {text}"
                let img, text, maxTokens = prompts[0]
                let status, body = run (postJson client "/v1/chat/completions" (greedyRequest "eb" img text maxTokens))
                Expect.equal status 200 body
                Expect.equal (tokenIds (JsonNode.Parse body).["choices"].[0]) (wantIds (expected "eb" 0)) "adapter b alone after a's unload"
            finally
                server.StopAsync().GetAwaiter().GetResult()
        }
    ]
