// Compares the chat strings that real Jinja2 rendered from an export's chat template (the --chat-out JSON of
// scripts/check-export-with-transformers.py) with what the project's Qwen25VLChat renders for the same conversations.
//
//   dotnet fsi scripts/hfcheck/compare-chat-renderings.fsx CHAT_JSON [TOKENIZER_JSON]
//
// TOKENIZER_JSON (only needed for Qwen25VLChat's special-token checks): default the export's tokenizer.json, else
// models/medsynth-base/tokenizer.json. An image part is ImagePart(1, 2, 2): one <|image_pad|>, as the template writes
// it before the processor expands it. Exit code 1 when a rendering differs (the first difference is printed).
#load "../References.fsx"

open System.IO
open System.Text.Json.Nodes
open MMedExpert.Core.Tokenization
open References

if scriptArgs.Length < 1 then
    eprintfn "usage: dotnet fsi scripts/hfcheck/compare-chat-renderings.fsx CHAT_JSON [TOKENIZER_JSON]"
    exit 2
let doc = JsonNode.Parse(File.ReadAllText scriptArgs[0])
let tokenizerPath =
    if scriptArgs.Length > 1 then scriptArgs[1]
    else
        let own = Path.Combine(doc["export"].GetValue<string>(), "tokenizer.json")
        if File.Exists own then own else Path.Combine(repoRoot, "models", "medsynth-base", "tokenizer.json")
let chat = Qwen25VLChat(Qwen2Tokenizer.FromFile tokenizerPath)

let part (p: JsonNode) : ChatPart =
    match p["type"].GetValue<string>() with
    | "text" -> TextPart(p["text"].GetValue<string>())
    | "image" -> ImagePart(1, 2, 2)
    | other -> failwithf "content part type %s" other

let message (m: JsonNode) =
    let content =
        match m["content"] with
        | :? JsonArray as parts -> [ for p in parts -> part p ]
        | c -> [ TextPart(c.GetValue<string>()) :> ChatPart ]
    ChatMessage(m["role"].GetValue<string>(), content)

let show (s: string) = s.Replace("\n", "\\n").Replace("\t", "\\t")
printfn "Jinja2 %s (transformers %s) vs Qwen25VLChat; template from %s; tokenizer %s"
    (doc["jinja2"].GetValue<string>()) (doc["transformers"].GetValue<string>()) (doc["template_files"].ToJsonString()) tokenizerPath
let mutable differ = 0
for case in doc["cases"].AsArray() do
    let name = case["name"].GetValue<string>()
    let messages = [ for m in case["messages"].AsArray() -> message m ]
    let jinja = case["rendered"].GetValue<string>()
    let ours = chat.Render(messages, case["add_generation_prompt"].GetValue<bool>())
    if ours = jinja then printfn "equal   %s (%d chars)" name jinja.Length
    else
        differ <- differ + 1
        let i = Seq.zip ours jinja |> Seq.tryFindIndex (fun (a, b) -> a <> b) |> Option.defaultValue (min ours.Length jinja.Length)
        let around (s: string) = show (s.Substring(max 0 (i - 30), min s.Length (i + 40) - max 0 (i - 30)))
        printfn "DIFFER  %s: first difference at char %d\n        jinja2: ...%s...\n        ours:   ...%s..." name i (around jinja) (around ours)
printfn "%d of %d conversations differ" differ (doc["cases"].AsArray().Count)
exit (if differ = 0 then 0 else 1)
