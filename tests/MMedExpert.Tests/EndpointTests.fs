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
    ]
