/// The OpenAI-compatible client (Serving/Client): request and response formats, errors and retries against a scripted
/// handler, endpoint rollouts (grouping, stop token, local log-probabilities), and end to end against `mmx serve`.
module MMedExpert.Tests.EndpointTests

open System
open System.Collections.Generic
open System.IO
open System.Net
open System.Net.Http
open System.Net.Sockets
open System.Text
open System.Text.Json
open System.Text.Json.Nodes
open System.Threading
open System.Threading.Tasks
open Expecto
open MMedExpert.Core.Lora
open MMedExpert.Core.Model.Generation
open MMedExpert.Core.Training
open MMedExpert.Serving.Client
open MMedExpert.Serving.Server
open MMedExpert.Core.Model
open MMedExpert.Core.IO
open MMedExpert.Tests.TestKit
open MMedExpert.Tests.TinyVlm

/// An HttpMessageHandler that answers from a script and records each request (path, body).
type private ScriptedHandler(answer: string -> JsonNode -> int * string) =
    inherit HttpMessageHandler()
    let requests = ResizeArray<string * JsonNode>()
    member _.Requests = requests
    override _.SendAsync(request, _cancel) =
        task {
            let! body = if isNull request.Content then Task.FromResult "" else request.Content.ReadAsStringAsync()
            let json = if body = "" then null else JsonNode.Parse body
            let path = request.RequestUri.AbsolutePath
            lock requests (fun () -> requests.Add((path, json)))
            let status, text = answer path json
            return new HttpResponseMessage(enum<HttpStatusCode> status, Content = new StringContent(text, Encoding.UTF8, "application/json"))
        }

let private fastRetries = EndpointOptions(Retries = 2, RetryDelay = TimeSpan.FromMilliseconds 1.0)

/// A loopback port nothing listens on (bound, then released).
let private closedPort () =
    let l = new TcpListener(IPAddress.Loopback, 0)
    l.Start()
    let port = (l.LocalEndpoint :?> IPEndPoint).Port
    l.Stop()
    port

let private throwsEndpoint (f: unit -> unit) =
    try
        f ()
        failwith "expected an EndpointException"
    with
    | :? EndpointException as e -> e
    | :? AggregateException as a when (a.InnerException :? EndpointException) -> a.InnerException :?> EndpointException

/// An OpenAI chat completion with choices of given token ids, finish reasons and per-token log-probabilities.
let private completion (choices: (int list * string * float32) list) =
    let arr = JsonArray()
    choices
    |> List.iteri (fun k (ids, finish, lp) ->
        let content = JsonArray()
        for id in ids do content.Add(JsonObject(dict [ "token", JsonValue.Create($"token_id:{id}") :> JsonNode; "logprob", JsonValue.Create lp ]))
        arr.Add(JsonObject(dict [ "index", JsonValue.Create k :> JsonNode
                                  "message", JsonObject(dict [ "role", JsonValue.Create "assistant" :> JsonNode; "content", JsonValue.Create "text" ])
                                  "logprobs", JsonObject(dict [ "content", content :> JsonNode ])
                                  "finish_reason", JsonValue.Create finish ])))
    JsonObject(dict [ "model", JsonValue.Create "m" :> JsonNode; "choices", arr ]).ToJsonString()

/// `mmx serve` of a checkpoint on a free loopback port (in-process), stopped on Dispose.
type private LoopbackServer(modelDir: string) =
    let server = OpenAiServer.StartAsync(ServeOptions(ModelDir = modelDir, Port = 0, MaxBatch = 8, MaxModelLen = 512)).GetAwaiter().GetResult()
    member _.Url = server.BaseAddress.ToString()
    member _.BaseName = server.Options.BaseModelName
    interface IDisposable with
        member _.Dispose() = server.StopAsync().GetAwaiter().GetResult()

/// A LoRA adapter on the base whose B factors are random (so the policy differs from the base), saved as PEFT.
let private randomAdapter (baseDir: string) (dir: string) =
    use m = Qwen25VL.Load baseDir
    use adapters = new LoraAdapters(m)
    adapters.Add("a", LoraConfig(R = 4, Alpha = 8.0, Dropout = 0.0, Init = LoraInit.Gaussian), 1L)
    do
        use _ = TorchSharp.torch.no_grad()
        for w in adapters.Modules "a" do
            w.B.copy_(TorchSharp.torch.randn(w.B.shape, generator = new TorchSharp.torch.Generator(7UL)).mul(TorchSharp.Scalar.op_Implicit 0.05)) |> ignore
    adapters.Save("a", dir)
    dir

/// The tensors of a PEFT folder (copied out of the file), by name.
let private adapterTensors (dir: string) =
    use file = SafetensorsFile.Open(Path.Combine(dir, "adapter_model.safetensors"))
    file.LoadAll(copy = true) |> Seq.map (fun struct (n, t) -> n, t) |> Map.ofSeq

[<Tests>]
let tests =
    testList "Endpoint" [
        test "the API root is <address>/v1/ however the address is written; a non-URL is refused" {
            for given in [ "http://127.0.0.1:8000"; "http://127.0.0.1:8000/"; "http://127.0.0.1:8000/v1"; "http://127.0.0.1:8000/v1/" ] do
                Expect.equal ((OpenAiClient.ApiBaseOf given).ToString()) "http://127.0.0.1:8000/v1/" given
            Expect.equal ((OpenAiClient.ApiBaseOf "https://h/proxy").ToString()) "https://h/proxy/v1/" "a path prefix is kept"
            let e = throwsEndpoint (fun () -> OpenAiClient.ApiBaseOf "127.0.0.1:8000" |> ignore)
            Expect.stringContains e.Message "127.0.0.1:8000" "names the address"
        }

        test "a chat request carries the sample's system prompt, images as data URLs before the text, sampling fields and token-id log-probs" {
            use dir = new TempDir()
            let sample = (rlSamples dir.Path).[0].Prompt
            let messages = SampleMessages.Of(sample, "You are a helpful assistant.")
            let request = ChatRequest(Model = "m", Messages = messages, N = 3, Temperature = 0.7, TopP = 0.9, MaxTokens = 12, Seed = Nullable 5L,
                                      LogProbs = true, ReturnTokensAsTokenIds = true, BannedTokenIds = ResizeArray [ 7; 9 ])
            let json = request.ToJson()
            Expect.equal (json["n"].GetValue<int>()) 3 "n"
            Expect.equal (json["seed"].GetValue<int64>()) 5L "seed"
            Expect.equal (json["max_tokens"].GetValue<int>()) 12 "max_tokens"
            Expect.isTrue (json["return_tokens_as_token_ids"].GetValue<bool>()) "token ids asked for"
            Expect.equal (json["logit_bias"].["7"].GetValue<int>()) (-100) "banned token"
            let msgs = json["messages"].AsArray()
            Expect.equal (msgs[0].["role"].GetValue<string>()) "system" "system first"
            Expect.equal (msgs[0].["content"].[0].["text"].GetValue<string>()) "You are a helpful assistant." "default system prompt"
            let parts = msgs[1].["content"].AsArray()
            let url = parts[0].["image_url"].["url"].GetValue<string>()
            Expect.stringStarts url "data:image/png;base64," "PNG data URL"
            Expect.sequenceEqual (Convert.FromBase64String(url.Substring(url.IndexOf ',' + 1))) (File.ReadAllBytes sample.ImagePaths[0]) "the file's bytes"
            Expect.equal (parts[1].["text"].GetValue<string>()) sample.UserText "text after the image"
            let own = SampleMessages.Of(VisionChatSample([||], "q", SystemPrompt = "Think like a radiologist."), "default")
            Expect.equal (own[0].Content[0] :?> TextContentPart).Text "Think like a radiologist." "a sample's own system prompt wins"
            Expect.equal (SampleMessages.Of(VisionChatSample([||], "q"), null).Count) 1 "no system prompt at all when there is none"
            Expect.equal (ImageDataUrl.MediaType [| 0xFFuy; 0xD8uy; 0xFFuy; 0xE0uy |]) "image/jpeg" "JPEG by signature"
            Expect.isNull (ImageDataUrl.MediaType "hello"B) "not an image"
        }

        test "a log-prob entry's own token_id field gives the id (SGLang), before the token_id:<id> form" {
            let body = """{"model":"m","choices":[{"index":0,"message":{"content":"a"},"finish_reason":"length",
                "logprobs":{"content":[{"token":"hi","token_id":31,"logprob":-0.5},{"token":"token_id:12","logprob":-0.25}]}}]}"""
            let lp = (ChatCompletion.Parse body).Choices[0].LogProbs
            Expect.equal lp[0].TokenId (Nullable 31) "the field"
            Expect.equal lp[1].TokenId (Nullable 12) "the vLLM form still read"
        }

        test "LoRA routes: /v1 first; the server root when /v1 has no such route (SGLang), remembered; a 404 about the adapter is passed on" {
            let sglang = ScriptedHandler(fun path _ ->
                if path.StartsWith "/v1/" then 404, """{"detail":"Not Found"}"""
                elif path = "/unload_lora_adapter" then 404, """{"error":{"message":"adapter 'x' is not loaded"}}"""
                else 200, "{}")
            use client = new OpenAiClient("http://127.0.0.1:30000", fastRetries, sglang)
            client.LoadLoraAdapterAsync("x", "/a").GetAwaiter().GetResult()
            client.LoadLoraAdapterAsync("y", "/b").GetAwaiter().GetResult()
            Expect.equal [ for p, _ in sglang.Requests -> p ] [ "/v1/load_lora_adapter"; "/load_lora_adapter"; "/load_lora_adapter" ] "falls back once, then goes straight to the root"
            let e = throwsEndpoint (fun () -> client.UnloadLoraAdapterAsync("x").GetAwaiter().GetResult())
            Expect.stringContains e.Message "adapter 'x' is not loaded" "the server's own 404 message"
            let vllm = ScriptedHandler(fun _ _ -> 404, """{"error":{"message":"The lora adapter 'x' cannot be found.","type":"NotFoundError","code":404}}""")
            use client2 = new OpenAiClient("http://127.0.0.1:8000", fastRetries, vllm)
            let e2 = throwsEndpoint (fun () -> client2.UnloadLoraAdapterAsync("x").GetAwaiter().GetResult())
            Expect.stringContains e2.Message "cannot be found" "an unknown adapter is not a missing route"
            Expect.equal [ for p, _ in vllm.Requests -> p ] [ "/v1/unload_lora_adapter" ] "no fallback for it"
        }

        test "responses: choices in index order, token ids from token_id:<id>, stop_reason, and error bodies of three server styles" {
            let body = """{"model":"m","choices":[
                {"index":1,"message":{"content":"b"},"finish_reason":"length","logprobs":{"content":[{"token":"token_id:12","logprob":-0.5}]}},
                {"index":0,"message":{"content":"a"},"finish_reason":"stop","stop_reason":151645,"logprobs":{"content":[{"token":"hi","logprob":-1.25}]}}]}"""
            let c = ChatCompletion.Parse body
            Expect.equal [ for ch in c.Choices -> ch.Content ] [ "a"; "b" ] "by index"
            Expect.equal (c.Choices[0].StopTokenId) (Nullable 151645) "stop_reason token"
            Expect.equal (c.Choices[1].LogProbs[0].TokenId) (Nullable 12) "token id"
            Expect.isFalse (c.Choices[0].LogProbs[0].TokenId.HasValue) "a token string has no id"
            Expect.equal (c.Choices[0].LogProbs[0].LogProb) (-1.25f) "log-prob"
            Expect.throwsT<FormatException> (fun () -> ChatCompletion.Parse """{"object":"x"}""" |> ignore) "no choices"
            let msg b = OpenAiClient.ErrorMessage(b, HttpStatusCode.NotFound)
            Expect.equal (msg """{"error":{"message":"The model `x` does not exist.","type":"NotFoundError","code":404}}""") "The model `x` does not exist." "OpenAI"
            Expect.equal (msg """{"object":"error","message":"bad lora","code":400}""") "bad lora" "older vLLM"
            Expect.equal (msg """{"detail":"Not Found"}""") "Not Found" "FastAPI"
            Expect.equal (msg "") "NotFound" "empty body: the status"
        }

        test "a 4xx answer is one error naming URL, status and message, never retried; 5xx is retried a bounded number of times" {
            let handler = new ScriptedHandler(fun path _ ->
                if path.EndsWith "/models" then 503, """{"error":{"message":"warming up"}}"""
                else 404, """{"error":{"message":"The model `nope` does not exist."}}""")
            use client = new OpenAiClient("http://10.0.0.1:9", fastRetries, handler)
            let request = ChatRequest(Model = "nope", Messages = SampleMessages.Of(VisionChatSample([||], "q"), null))
            let e = throwsEndpoint (fun () -> client.ChatAsync(request).GetAwaiter().GetResult() |> ignore)
            Expect.equal e.Message "endpoint http://10.0.0.1:9/v1/chat/completions: HTTP 404: The model `nope` does not exist." "one line"
            Expect.equal handler.Requests.Count 1 "4xx is not retried"
            let e = throwsEndpoint (fun () -> client.ModelsAsync().GetAwaiter().GetResult() |> ignore)
            Expect.equal e.Status (Nullable 503) "status"
            Expect.stringContains e.Message "warming up (after 3 tries)" "message and tries"
            Expect.equal handler.Requests.Count 4 "1 + 3 tries"
        }

        test "an endpoint that does not listen is a clear error naming the URL" {
            let port = closedPort ()
            use client = new OpenAiClient($"http://127.0.0.1:{port}", EndpointOptions(Retries = 1, RetryDelay = TimeSpan.FromMilliseconds 1.0))
            let e = throwsEndpoint (fun () -> client.ModelsAsync().GetAwaiter().GetResult() |> ignore)
            Expect.stringContains e.Message $"http://127.0.0.1:{port}/v1/models" "names the URL"
            Expect.stringContains e.Message "cannot connect" "says what failed"
            Expect.isFalse e.Status.HasValue "no status"
        }

        test "endpoint rollouts: one request per distinct prompt with n = its completions, the stop token appended, log-probs recomputed locally" {
            use dir = new TempDir()
            use m = model 5L
            use adapters = new LoraAdapters(m)
            adapters.Add("rl", LoraConfig(R = 4, Alpha = 8.0, Dropout = 0.0, Init = LoraInit.PiSSA), 3L)
            adapters.SetActive "rl"
            m.eval() |> ignore
            let tok = tokenizer.Value
            let generator = Qwen25VLGenerator(m, Func<IReadOnlyList<int>, string>(fun ids -> tok.Decode(ids)))
            let enc = encoder ()
            let samples = rlSamples dir.Path
            let prompts = [| samples[0].Prompt; samples[1].Prompt |]
            let promptOf = [| 0; 1; 0; 1; 1 |]
            let word = (tok.TokenToId "image").GetValueOrDefault 40
            // Choice j of a request: two tokens, then "stop" for even j (the stop token left out, as vLLM does), else "length".
            let handler = new ScriptedHandler(fun _ body ->
                let n = body["n"].GetValue<int>()
                200, completion [ for j in 0 .. n - 1 -> [ word; 30 + j ], (if j % 2 = 0 then "stop" else "length"), -1.5f ])
            use client = new OpenAiClient("http://10.0.0.1:9", fastRetries, handler)
            let rollouts = EndpointRollouts(client, "policy", enc, generator, null, 2)
            rollouts.BeginStep 1L
            let options = GenerationOptions(MaxNewTokens = 6, Temperature = 1.0, TopP = 0.95, Seed = 100L, StopTokenIds = enc.StopTokenIds,
                                            SuppressTokenIds = enc.SuppressTokenIds)
            let out = rollouts.Sample(prompts, promptOf, options)
            Expect.equal out.Count 5 "one completion per entry"
            let requests = handler.Requests |> Seq.map snd |> Seq.sortBy (fun b -> b["seed"].GetValue<int64>()) |> List.ofSeq
            Expect.equal [ for r in requests -> r["n"].GetValue<int>(), r["seed"].GetValue<int64>() ] [ 2, 100L; 3, 101L ] "n per prompt, seed per prompt"
            for r in requests do
                Expect.equal (r["model"].GetValue<string>()) "policy" "model name"
                Expect.equal (r["top_p"].GetValue<double>()) 0.95 "top_p"
                Expect.equal (r["max_tokens"].GetValue<int>()) 6 "max_tokens"
                Expect.isTrue (r["logprobs"].GetValue<bool>()) "log-probs asked for"
                Expect.equal (r["logit_bias"].[string (tok.TokenToId "<|image_pad|>").Value].GetValue<int>()) (-100) "vision placeholders banned"
            // Prompt 0's completions are entries 0 and 2 (choices 0, 1); prompt 1's are 1, 3, 4 (choices 0, 1, 2).
            let expectedIds = [| [ word; 30; tok.ImEnd ]; [ word; 30; tok.ImEnd ]; [ word; 31 ]; [ word; 31 ]; [ word; 32; tok.ImEnd ] |]
            for i in 0 .. 4 do
                Expect.equal (List.ofSeq out[i].TokenIds) expectedIds[i] $"ids of {i}"
                Expect.equal (out[i].Finish) (if expectedIds[i].Length = 3 then FinishReason.Stop else FinishReason.Length) $"finish of {i}"
                Expect.equal (out[i].Text) (tok.Decode(ResizeArray [ word; expectedIds[i].[1] ])) $"text of {i} without the stop token"
            // Log-probs are the trainer's own numbers (whole-sequence scoring, one prompt at a time), for every token.
            let mutable gap, count = 0.0, 0
            for i in 0 .. 4 do
                let batch = enc.Prompts([ prompts[promptOf[i]] ])
                let local = (generator.ScoreCompletions(batch, [ out[i].TokenIds ]))[0]
                Expect.equal (out[i].LogProbs.Count) local.Length $"one log-prob per token of {i}"
                for t in 0 .. local.Length - 1 do
                    Expect.floatClose { absolute = 1e-4; relative = 1e-4 } (float out[i].LogProbs[t]) (float local[t]) $"log-prob {t} of {i}"
                for t in 0 .. 1 do
                    gap <- gap + abs (-1.5 - float local[t])
                    count <- count + 1
            let metrics = rollouts.StepMetrics()
            Expect.floatClose { absolute = 1e-4; relative = 1e-4 } metrics["rollout_logprob_gap"] (gap / float count) "gap over the endpoint's tokens"
        }

        test "endpoint rollouts refuse an answer without token ids, naming return_tokens_as_token_ids" {
            use dir = new TempDir()
            use m = model 5L
            let enc = encoder ()
            let handler = new ScriptedHandler(fun _ _ ->
                200, """{"choices":[{"index":0,"message":{"content":"x"},"finish_reason":"length","logprobs":{"content":[{"token":"x","logprob":-1.0}]}}]}""")
            use client = new OpenAiClient("http://10.0.0.1:9", fastRetries, handler)
            let rollouts = EndpointRollouts(client, "policy", enc, Qwen25VLGenerator(m), null, 1)
            let e = throwsEndpoint (fun () ->
                rollouts.Sample([| (rlSamples dir.Path).[1].Prompt |], [| 0 |], GenerationOptions(MaxNewTokens = 2, StopTokenIds = enc.StopTokenIds)) |> ignore)
            Expect.stringContains e.Message "return_tokens_as_token_ids" "names the needed option"
        }

        test "mmx eval --endpoint: an endpoint that does not listen exits 2 with one line naming the URL" {
            use dir = new TempDir()
            let data = dir.File "data"
            let code, _, err = runMmx [ "data"; "synth"; "--out"; data; "--n"; "8"; "--image-size"; "56" ]
            Expect.equal code 0 $"mmx data synth: {err}"
            let port = closedPort ()
            let code, _, err =
                runMmx [ "eval"; "--endpoint"; $"http://127.0.0.1:{port}"; "--model"; "m"; "--bench"; "medsynth"; "--data"; Path.Combine(data, "sft.jsonl")
                         "--out"; dir.File "eval"; "--limit"; "2" ]
            Expect.equal code 2 "an input error"
            Expect.stringContains err $"http://127.0.0.1:{port}/v1/chat/completions" "names the URL"
            Expect.stringContains err "cannot connect" "says what failed"
            Expect.equal (err.Trim().Split('\n').Length) 1 "one line"
        }
    
        test "end to end against mmx serve: eval --endpoint predicts what in-process eval does; an unknown model is one line naming URL and message" {
            use dir = new TempDir()
            let data, baseDir = TrainingCliTests.medSynthWithTinyBase dir
            let eval out extra =
                runMmx ([ "eval"; "--bench"; "medsynth"; "--data"; Path.Combine(data, "sft.jsonl"); "--out"; out; "--limit"; "4"; "--batch-size"; "2"
                          "--max-new-tokens"; "8" ] @ extra)
            let code, _, err = eval (dir.File "local") [ "--base"; baseDir ]
            Expect.equal code 0 $"in-process eval: {err}"
            use server = new LoopbackServer(baseDir)
            let code, _, err = eval (dir.File "remote") [ "--endpoint"; server.Url; "--model"; server.BaseName; "--concurrency"; "2" ]
            Expect.equal code 0 $"endpoint eval: {err}"
            let predictions d = File.ReadAllText(Path.Combine(d, "predictions.jsonl"))
            Expect.equal (File.ReadAllLines(Path.Combine(dir.File "remote", "predictions.jsonl")).Length) 4 "four predictions"
            Expect.equal (predictions (dir.File "remote")) (predictions (dir.File "local")) "same greedy outputs and grades, same format"
            Expect.equal (File.ReadAllText(Path.Combine(dir.File "remote", "results.json"))) (File.ReadAllText(Path.Combine(dir.File "local", "results.json"))) "same results"
            let code, _, err = eval (dir.File "remote") [ "--endpoint"; server.Url; "--model"; server.BaseName ]
            Expect.equal code 0 $"rerun: {err}"
            Expect.equal ((JsonDocument.Parse(File.ReadAllText(Path.Combine(dir.File "remote", "results.json")))).RootElement.GetProperty("resumed").GetInt32()) 4 "resumed"
            let code, _, err = eval (dir.File "unknown") [ "--endpoint"; server.Url; "--model"; "no-such-model" ]
            Expect.equal code 2 "an input error"
            Expect.equal (err.Trim().Split('\n').Length) 1 "one line"
            Expect.stringContains err $"{server.Url}v1/chat/completions" "names the URL"
            Expect.stringContains err "404" "names the status"
            Expect.stringContains err "no-such-model" "carries the server's message"
        }

        test "end to end against mmx serve: gba --rollout-endpoint runs 2 steps, publishes the adapter each step, learns locally, matches local rollouts' log-probs" {
            use dir = new TempDir()
            let data, baseDir = TrainingCliTests.medSynthWithTinyBase dir
            let start = randomAdapter baseDir (dir.File "start")
            use server = new LoopbackServer(baseDir)
            let gba out extra =
                runMmx ([ "gba"; "--base"; baseDir; "--adapter"; start; "--data"; data; "--specialty"; "pediatrics"; "--out"; out; "--steps"; "2"
                          "--group-size"; "2"; "--prompts-per-step"; "2"; "--max-new-tokens"; "8"; "--checkpoint-every"; "1"; "--seed"; "3"; "--json"
                          // KL to the base: the random starting adapter is far from it, so every step moves the adapter even when
                          // all rewards of a group tie (a random tiny model rarely earns any).
                          "--kl-reference"; "base"; "--lr"; "0.02" ] @ extra)
            let remote = dir.File "remote"
            let code, _, err = gba remote [ "--rollout-endpoint"; server.Url; "--rollout-model"; "policy"; "--rollout-concurrency"; "2" ]
            Expect.equal code 0 $"mmx gba --rollout-endpoint: {err}"
            let lines = MetricsWriter.Read(Path.Combine(remote, "metrics.jsonl"))
            Expect.equal lines.Count 2 "a metrics line per step"
            for line in lines do
                let gap = line["rollout_logprob_gap"].GetValue<double>()
                let step = line["step"].GetValue<int64>()
                // The server decodes with the published adapter in fp32: its log-probs are the trainer's up to rounding. Step 2's
                // adapter is the once-updated one, so a server still on the starting adapter (or on the base) would be far off.
                Expect.isLessThan gap 1e-3 $"step {step}: endpoint log-probs match the trainer's (gap {gap})"
                Expect.isTrue (line["response_length"].GetValue<double>() >= 1.0 && line["response_length"].GetValue<double>() <= 9.0) "lengths within max_new_tokens + stop"
            use client = new OpenAiClient(server.Url)
            let served = client.ModelsAsync().GetAwaiter().GetResult()
            let policy = served |> Seq.tryFind (fun m -> m.Id = "policy")
            Expect.isSome policy "the published adapter is listed"
            Expect.equal policy.Value.Root (Path.GetFullPath(Path.Combine(remote, "endpoint-adapter", "step-2"))) "by the path of step 2's folder"
            Expect.equal policy.Value.Parent server.BaseName "on the base"
            // The adapter learned locally: step 1 published the start, step 2 the once-updated adapter, and the run saved the trained one.
            let differs (a: Map<string, TorchSharp.torch.Tensor>) (b: Map<string, TorchSharp.torch.Tensor>) =
                Expect.equal (Set.ofSeq (Map.keys a)) (Set.ofSeq (Map.keys b)) "the same modules"
                a |> Map.exists (fun k t -> not (sameTensor t b[k]))
            let initial = adapterTensors start
            let published k = adapterTensors (Path.Combine(remote, "endpoint-adapter", $"step-{k}"))
            Expect.isFalse (differs initial (published 1)) "step 1 published the starting adapter"
            Expect.isTrue (differs (published 1) (published 2)) "step 2 published the updated adapter"
            Expect.isTrue (differs initial (adapterTensors (Path.Combine(remote, "adapter")))) "the trained adapter differs from the start"
            // The local path with the same settings (μ = 1): sampled tokens differ (another random stream), the bookkeeping does not.
            let local = dir.File "local"
            let code, _, err = gba local []
            Expect.equal code 0 $"local gba: {err}"
            let localLines = MetricsWriter.Read(Path.Combine(local, "metrics.jsonl"))
            Expect.equal localLines.Count 2 "local: 2 steps"
            for name, ls in [ "endpoint", lines; "local", localLines ] do
                for l in ls do
                    // μ = 1: the importance ratio is exactly 1 on both paths, so nothing is clipped.
                    Expect.equal (l["clip_fraction"].GetValue<double>()) 0.0 $"{name}: no clipping at μ = 1"
                    Expect.isGreaterThan (l["kl"].GetValue<double>()) 0.0 $"{name}: KL to the base > 0"
            let keys (l: JsonObject) = l |> Seq.map (fun kv -> kv.Key) |> Set.ofSeq
            Expect.equal (keys lines[0] - keys localLines[0]) (set [ "rollout_logprob_gap"; "rollout_logprob_gap_max"; "rollout_endpoint_s"; "rollout_rescore_s" ]) "the same metrics plus the endpoint's"
            let code, _, err = gba remote [ "--rollout-endpoint"; server.Url; "--rollout-model"; "policy"; "--resume" ]
            Expect.equal code 0 $"resuming a finished run: {err}"
            Expect.equal (MetricsWriter.Read(Path.Combine(remote, "metrics.jsonl")).Count) 2 "nothing rerun"
        }
    ]
