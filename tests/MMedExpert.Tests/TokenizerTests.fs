module MMedExpert.Tests.TokenizerTests

open System
open System.IO
open System.Text
open System.Text.Json
open System.Text.Json.Nodes
open System.Text.RegularExpressions
open Expecto
open FsCheck
open FsCheck.FSharp
open MMedExpert.Core.Tokenization
open MMedExpert.Tests.TestKit

// ---- fixtures ------------------------------------------------------------------------------------------------------

let private fixtureDir = fixture "qwen2-tokenizer"
let private fixtureTokenizerPath = Path.Combine(fixtureDir, "tokenizer.json")
/// The committed reduced Qwen2 tokenizer: exact Qwen2 ids for the slice and the chat prompts (see its README).
let private qwen = lazy (Qwen2Tokenizer.FromFile fixtureTokenizerPath)

let private readReference (path: string) =
    File.ReadLines path
    |> Seq.filter (fun l -> l.Length > 0)
    |> Seq.map (fun l ->
        use doc = JsonDocument.Parse l
        let r = doc.RootElement
        r.GetProperty("text").GetString(), [| for e in r.GetProperty("ids").EnumerateArray() -> e.GetInt32() |])
    |> Array.ofSeq

let private sharedQwen2 =
    sharedDir
    |> Option.map (fun d -> Path.Combine(d, "fixtures", "qwen2-tokenizer"))
    |> Option.filter (fun d -> File.Exists(Path.Combine(d, "tokenizer.json")) && File.Exists(Path.Combine(d, "reference-encodings.jsonl")))

let private nfc (s: string) = s.Normalize NormalizationForm.FormC

/// Runs f and returns the exception of type 'e it throws (Expect.throwsT only checks the type).
let private catchT<'e when 'e :> exn> (f: unit -> unit) : 'e =
    let thrown =
        try f (); None
        with
        | :? 'e as e -> Some e
    match thrown with
    | Some e -> e
    | None -> failtestf "expected %s" typeof<'e>.Name

/// Valid Unicode text weighted towards what stresses the tokenizer: letters of several scripts, digits, punctuation,
/// every kind of whitespace, combining marks (NFC composes them), Hangul jamo, compatibility characters, emoji with
/// joiners, contractions; plus any scalar value now and then.
let private unicodeText =
    let pick (xs: string list) = Gen.elements xs
    let anyScalar =
        Gen.choose (0, 0x10FFFF)
        |> Gen.filter (fun c -> c < 0xD800 || c > 0xDFFF)
        |> Gen.map Char.ConvertFromUtf32
    let piece =
        Gen.frequency [
            6, pick [ "a"; "Z"; "pneumonia"; "X-ray"; " the"; "é"; "ö"; "ß"; "İ"; "ſ"; "K" ]
            3, pick [ " "; "  "; "\t"; "\n"; "\r\n"; "\n\n"; " \n "; "\u00A0"; "\u3000"; "\u2028"; "\u0085"; "\u200B"; "\u000B" ]
            3, pick [ "'s"; "'T"; "'re"; "'VE"; "'m"; "'ll"; "'D"; "'x"; "'" ]
            3, pick [ "1"; "42"; "３"; "Ⅳ"; "½"; "٣" ]
            3, pick [ "."; ","; "?!"; "("; ")"; "<"; "|"; ">"; "°C"; "%"; "--"; "…" ]
            3, pick [ "\u0301"; "\u030A"; "\u0338"; "e\u0301"; "A\u030A"; "\u1100\u1161"; "\u1100\u1161\u11A8"; "\u212B"; "\uFB01"; "\uF900" ]
            2, pick [ "肺炎"; "患者"; "한국어"; "пациент"; "مريض"; "αβγ"; "ไทย"; "𝐀𝐁"; "𠀀" ]
            2, pick [ "🙂"; "👩\u200D⚕\uFE0F"; "🫀"; "🧠" ]
            1, anyScalar
        ]
    Gen.listOf piece |> Gen.map String.Concat

let private noAddedTokens (tok: Qwen2Tokenizer) (s: string) =
    tok.AddedTokens |> Seq.forall (fun t -> not (s.Contains(t.Content, StringComparison.Ordinal)))

let private propConfig = { FsCheckConfig.defaultConfig with maxTest = 300 }

// ---- malformed files -----------------------------------------------------------------------------------------------

/// Writes the fixture tokenizer.json with one edit applied and returns the error reading it gives.
let private errorAfter (edit: JsonObject -> unit) =
    use dir = new TempDir()
    let path = dir.File "tokenizer.json"
    let root = JsonNode.Parse(File.ReadAllText fixtureTokenizerPath).AsObject()
    edit root
    File.WriteAllText(path, root.ToJsonString())
    let e = catchT<TokenizerException> (fun () -> Qwen2Tokenizer.FromFile path |> ignore)
    e.Message, path

let private expectNames (message: string, path: string) (field: string) =
    Expect.stringContains message path "the error names the file"
    Expect.stringContains message field "the error names the field"

// ---- chat format ---------------------------------------------------------------------------------------------------

let private systemDefault = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
let private systemIds = [ 151644; 8948; 198; 2610; 525; 264; 10950; 17847; 13; 151645; 198 ]
let private pads n = String.replicate n "<|image_pad|>"

/// A tiny synthetic medical corpus for the trainer (deterministic).
let private syntheticCorpus count =
    let rng = Random 7
    let subjects = [| "The patient"; "A 45-year-old woman"; "The child"; "He"; "She" |]
    let verbs = [| "presents with"; "denies"; "reports"; "was treated for"; "has a history of" |]
    let findings = [| "chest pain"; "fever of 38.5°C"; "a left pleural effusion"; "pneumonia"; "Kawasaki disease"; "an elevated PSA" |]
    let tails = [| "."; " since yesterday."; ", and it's worsening."; "; the X-ray shows consolidation."; " (BI-RADS 4)." |]
    [ for _ in 1..count ->
        let pick (xs: string[]) = xs[rng.Next xs.Length]
        sprintf "%s %s %s%s" (pick subjects) (pick verbs) (pick findings) (pick tails) ]

// ---- properties ----------------------------------------------------------------------------------------------------

/// .NET's Regex has the pattern's semantics on BMP text (its \s is White_Space, \p{L}/\p{N} the same categories) but
/// works on UTF-16 units, so astral characters are left out here (the scanner handles them as code points), and its
/// (?i) does not fold U+017F 'ſ' to 's' as Oniguruma, the reference's engine, does, so 'ſ' is left out too.
let private scannerMatchesRegex =
    let regex = Regex(Qwen2PreTokenizer.Pattern, RegexOptions.CultureInvariant)
    let bmp = unicodeText |> Gen.map (fun s -> String(s |> Seq.filter (fun c -> not (Char.IsSurrogate c) && c <> 'ſ') |> Array.ofSeq))
    Prop.forAll (Arb.fromGen bmp) (fun s ->
        let expected = [ for m in regex.Matches s -> m.Index, m.Length ]
        let actual = [ for struct (i, n) in Qwen2PreTokenizer.Split s -> i, n ]
        actual = expected)

let private linearAndHeapBpeAgree =
    let words = Gen.frequency [ 3, unicodeText; 1, Gen.elements [ String(' ', 300); String('a', 500); "pneumonia" + String('!', 200) ] ]
    Prop.forAll (Arb.fromGen words) (fun s ->
        let def = qwen.Value.Definition
        let linear, heap = BpeModel.FromDefinition(def, 4096), BpeModel.FromDefinition(def, 1)
        let bytes = Encoding.UTF8.GetBytes(nfc s)
        let a, b = Collections.Generic.List<int>(), Collections.Generic.List<int>()
        linear.EncodeWord(ReadOnlySpan bytes, a)
        heap.EncodeWord(ReadOnlySpan bytes, b)
        List.ofSeq a = List.ofSeq b)

let private trainedRoundTrips =
    let tok = lazy (Qwen2Tokenizer(BpeTrainer.Train(syntheticCorpus 200, BpeTrainerOptions(Merges = 200))))
    Prop.forAll (Arb.fromGen unicodeText) (fun s ->
        noAddedTokens tok.Value s ==> lazy (tok.Value.Decode(tok.Value.Encode s) = nfc s))

[<Tests>]
let tests =
    testList "Tokenizer" [
        testList "parity" [
            test "the committed reduced tokenizer reproduces the committed reference slice exactly" {
                let rows = readReference (Path.Combine(fixtureDir, "reference-slice.jsonl"))
                Expect.isGreaterThanOrEqual rows.Length 150 "slice size"
                for i, (text, ids) in Array.indexed rows do
                    Expect.sequenceEqual (qwen.Value.Encode text) ids (sprintf "slice line %d: %A" (i + 1) text)
            }

            test "all 3,000 shared reference encodings match (../shared or MMX_SHARED)" {
                match sharedQwen2 with
                | None -> skiptest "../shared/fixtures/qwen2-tokenizer not present"
                | Some dir ->
                    let tok = Qwen2Tokenizer.FromFile(Path.Combine(dir, "tokenizer.json"))
                    let rows = readReference (Path.Combine(dir, "reference-encodings.jsonl"))
                    Expect.equal rows.Length 3000 "reference size"
                    let mismatches = rows |> Array.filter (fun (t, ids) -> tok.Encode t <> ids) |> Array.length
                    Expect.equal mismatches 0 "texts whose ids differ from the reference"
                    let batch = tok.EncodeBatch(rows |> Array.map fst)
                    Expect.isTrue (Array.forall2 (fun b (_, ids) -> b = ids) batch rows) "EncodeBatch gives the same ids in order"
                    for t, ids in rows do Expect.equal (tok.Decode ids) (nfc t) "decode gives the NFC text back"
            }

            test "the chat-test prompts' ids are the full Qwen2 tokenizer's ids" {
                match sharedQwen2 with
                | None -> skiptest "../shared/fixtures/qwen2-tokenizer not present"
                | Some dir ->
                    let full = Qwen2Tokenizer.FromFile(Path.Combine(dir, "tokenizer.json"))
                    for line in File.ReadLines(Path.Combine(fixtureDir, "chat-texts.jsonl")) do
                        let text = JsonNode.Parse(line).["text"].GetValue<string>()
                        Expect.sequenceEqual (qwen.Value.Encode text) (full.Encode text) "reduced = full on the chat prompts"
            }

            test "decoding the slice gives its NFC text back" {
                for text, ids in readReference (Path.Combine(fixtureDir, "reference-slice.jsonl")) do
                    Expect.equal (qwen.Value.Decode ids) (nfc text) "round trip"
            }

            test "empty input gives empty output" {
                Expect.isEmpty (qwen.Value.Encode "") "Encode"
                Expect.isEmpty (qwen.Value.EncodeBatch [||]) "EncodeBatch"
                Expect.equal (qwen.Value.Decode [||]) "" "Decode"
            }

            test "EncodeBatch equals Encode one by one, in order" {
                let texts = readReference (Path.Combine(fixtureDir, "reference-slice.jsonl")) |> Array.map fst
                let batch = qwen.Value.EncodeBatch texts
                Expect.equal batch (texts |> Array.map (fun t -> qwen.Value.Encode t)) "same ids"
            }
        ]

        testList "encode and decode" [
            test "special ids are Qwen2.5-VL's" {
                let t = qwen.Value
                Expect.equal [ t.EndOfText; t.ImStart; t.ImEnd; t.VisionStart; t.VisionEnd; t.ImagePad; t.VideoPad ]
                    [ 151643; 151644; 151645; 151652; 151653; 151655; 151656 ] "ids"
                Expect.equal (t.TokenToId "<|im_start|>") (Nullable 151644) "TokenToId"
                Expect.equal (t.IdToToken 198) "Ċ" "IdToToken of a newline"
                Expect.equal (t.IdToToken 999999) null "IdToToken outside the vocabulary"
                Expect.equal t.VocabSize 151669 "largest id + 1"
                Expect.equal (Qwen2Tokenizer.FromFile(fixtureDir).VocabSize) 151669 "a folder means its tokenizer.json"
            }

            test "added tokens are matched in raw text, leftmost then longest; parseSpecial=false leaves special ones as text" {
                let t = qwen.Value
                let ids = t.Encode "a<|im_end|><|im_start|>"
                Expect.equal ids [| 64; 151645; 151644 |] "split out of the text"
                let plain = t.Encode("<|im_start|>x", parseSpecial = false)
                Expect.isFalse (Array.contains 151644 plain) "not parsed"
                Expect.equal (t.Decode plain) "<|im_start|>x" "spelled out as text"
                Expect.equal (t.Encode("<tool_call>", parseSpecial = false)) [| 151657 |] "non-special added tokens are still matched"
            }

            test "decoding invalid UTF-8 gives U+FFFD per maximal invalid subsequence; skipSpecial drops special tokens only" {
                let t = qwen.Value
                let byteId (b: int) = t.TokenToId(string ByteLevelAlphabet.ByteToChar[b]).Value
                Expect.equal (t.Decode [ byteId 0xE2 ]) "\uFFFD" "truncated sequence"
                Expect.equal (t.Decode [ byteId 0xE2; byteId 0x80 ]) "\uFFFD" "one replacement for a truncated 3-byte sequence"
                Expect.equal (t.Decode [ byteId 0xFF; byteId 0x41 ]) "\uFFFDA" "invalid byte then ASCII"
                Expect.equal (t.Decode([ 151644; byteId 0x68; byteId 0x69; 151657; 151645 ], skipSpecial = true)) "hi<tool_call>" "skip special"
                Expect.equal (t.Decode [ 151644; 10_000_000; -1 ]) "<|im_start|>" "ids outside the vocabulary are skipped"
            }

            testPropertyWithConfig propConfig "Decode(Encode(x)) = NFC(x) for text without added tokens" <|
                Prop.forAll (Arb.fromGen unicodeText) (fun s ->
                    let t = qwen.Value
                    noAddedTokens t s ==> lazy (t.Decode(t.Encode s) = nfc s))

            testPropertyWithConfig propConfig "the pre-tokenizer scanner splits exactly like the Qwen2 regex (BMP text)" scannerMatchesRegex

            testPropertyWithConfig propConfig "the pre-tokenizer pieces tile the text (astral characters too)" <|
                Prop.forAll (Arb.fromGen unicodeText) (fun s ->
                    let pieces = Qwen2PreTokenizer.Split s
                    pieces |> Seq.forall (fun struct (_, n) -> n > 0)
                    && String.Concat(pieces |> Seq.map (fun struct (i, n) -> s.Substring(i, n))) = s)

            testPropertyWithConfig propConfig "BPE merges the same with the rescanning and the heap algorithm" linearAndHeapBpeAgree

            test "pre-tokenizer edge cases: contractions fold case (Unicode: 'ſ is 's), U+0085 is whitespace, U+FEFF is not" {
                let pieces (s: string) = [ for struct (i, n) in Qwen2PreTokenizer.Split s -> s.Substring(i, n) ]
                Expect.equal (pieces "it'ſS") [ "it"; "'ſ"; "S" ] "'ſ is a contraction even before a letter"
                Expect.equal (pieces "IT'S it'ſ we'LL 'x") [ "IT"; "'S"; " it"; "'ſ"; " we"; "'LL"; " '"; "x" ] "contractions"
                Expect.equal (pieces "x\u0085y x\uFEFFy") [ "x"; "\u0085y"; " x"; "\uFEFFy" ] "NEL and BOM"
                Expect.equal (pieces "a  b\n\n  c   ") [ "a"; " "; " b"; "\n\n"; " "; " c"; "   " ] "whitespace runs"
                Expect.equal (pieces "x\t\r\n \r\n(1)") [ "x"; "\t\r\n \r\n"; "("; "1"; ")" ] "line breaks end a whitespace piece"
                Expect.equal (pieces "𝐀𝐁1🙂🙂 x1🙂word") [ "𝐀𝐁"; "1"; "🙂🙂"; " x"; "1"; "🙂word" ] "astral letters and symbols as code points"
            }

            test "offsets point at the start of each token's piece" {
                let text = "Is there a fracture?<|im_end|>\n"
                let struct (ids, starts) = qwen.Value.EncodeWithOffsets text
                Expect.equal ids [| 3872; 1052; 264; 58804; 30; 151645; 198 |] "ids"
                Expect.equal starts [| 0; 2; 8; 10; 19; 20; 30 |] "starts"
            }
        ]

        testList "malformed tokenizer.json" [
            test "bad JSON names the file" {
                use dir = new TempDir()
                let path = dir.File "tokenizer.json"
                File.WriteAllText(path, "{\"model\": {\"vocab\": ")
                let e = catchT<TokenizerException> (fun () -> Qwen2Tokenizer.FromFile path |> ignore)
                Expect.stringContains e.Message path "file"
                Expect.stringContains e.Message "JSON" "says what is wrong"
            }
            test "missing model" { expectNames (errorAfter (fun r -> r.Remove("model") |> ignore)) "model" }
            test "unknown token in merges (string form)" {
                let result = errorAfter (fun r -> r.["model"].["merges"].AsArray().Add(JsonValue.Create("Ġ zzzunknown")))
                expectNames result "model.merges[1056]"
                Expect.stringContains (fst result) "zzzunknown" "names the token"
            }
            test "unknown token in merges (pair form)" {
                let result = errorAfter (fun r -> r.["model"].["merges"].AsArray().Insert(0, JsonArray(JsonValue.Create("nope"), JsonValue.Create("Ġ"))))
                expectNames result "model.merges[0]"
            }
            test "a merge whose result is not in the vocabulary" {
                expectNames (errorAfter (fun r -> r.["model"].["merges"].AsArray().Add(JsonArray(JsonValue.Create("q"), JsonValue.Create("Ġ"))))) "model.merges[1056]"
            }
            test "unsupported normalizer" {
                let result = errorAfter (fun r -> r.["normalizer"] <- JsonObject([ Collections.Generic.KeyValuePair("type", JsonValue.Create("NFKC") :> JsonNode) ]))
                expectNames result "normalizer.type"
                Expect.stringContains (fst result) "NFKC" "names the type"
            }
            test "unsupported pre-tokenizer pattern" {
                expectNames (errorAfter (fun r -> r.["pre_tokenizer"].["pretokenizers"].[0].["pattern"]["Regex"] <- JsonValue.Create @"\s+")) "pre_tokenizer.pretokenizers[0].pattern.Regex"
            }
            test "unsupported decoder" {
                expectNames (errorAfter (fun r -> r.["decoder"].["type"] <- JsonValue.Create("WordPiece"))) "decoder.type"
            }
            test "BPE dropout and a continuing-subword prefix are refused" {
                expectNames (errorAfter (fun r -> r.["model"].["dropout"] <- JsonValue.Create(0.1))) "model.dropout"
                expectNames (errorAfter (fun r -> r.["model"].["continuing_subword_prefix"] <- JsonValue.Create("##"))) "model.continuing_subword_prefix"
            }
            test "an added token with lstrip is refused" {
                expectNames (errorAfter (fun r -> r.["added_tokens"].[0].["lstrip"] <- JsonValue.Create(true))) "added_tokens[0].lstrip"
            }
            test "a missing byte symbol is refused" {
                expectNames (errorAfter (fun r -> r.["model"].["vocab"].AsObject().Remove("Ā") |> ignore)) "model.vocab"
            }
            test "tokenizer_config.json adds its extra tokens, gives eos/pad, and a disagreeing entry names the config file" {
                use dir = new TempDir()
                let path = dir.File "tokenizer.json"
                File.Copy(fixtureTokenizerPath, path)
                let config = dir.File "tokenizer_config.json"
                File.WriteAllText(config, """{"eos_token": "<|im_end|>", "pad_token": {"content": "<|endoftext|>"},
                    "added_tokens_decoder": {"151645": {"content": "<|im_end|>", "special": true},
                                             "151700": {"content": "<extra>", "special": true}}}""")
                let t = Qwen2Tokenizer.FromFile path
                Expect.equal (Option.ofNullable t.EosTokenId) (Some 151645) "eos"
                Expect.equal (Option.ofNullable t.PadTokenId) (Some 151643) "pad"
                Expect.equal (t.Encode "x<extra>") [| 87; 151700 |] "extra token from the config"
                File.WriteAllText(config, """{"added_tokens_decoder": {"151645": {"content": "<|wrong|>"}}}""")
                let e = catchT<TokenizerException> (fun () -> Qwen2Tokenizer.FromFile path |> ignore)
                Expect.stringContains e.Message config "names the config file"
                Expect.stringContains e.Message "added_tokens_decoder[\"151645\"]" "names the field"
            }
        ]

        testList "Qwen2.5-VL chat format" [
            test "text only: default system prompt and generation prompt" {
                let chat = Qwen25VLChat(qwen.Value)
                let enc = chat.Encode([ ChatMessage.User "What is pneumonia?" ], addGenerationPrompt = true)
                Expect.equal enc.Text (systemDefault + "<|im_start|>user\nWhat is pneumonia?<|im_end|>\n<|im_start|>assistant\n") "text"
                Expect.equal (List.ofArray enc.Ids) (systemIds @ [ 151644; 872; 198; 3838; 374; 68229; 30; 151645; 198; 151644; 77091; 198 ]) "ids"
                Expect.isFalse (Array.contains true enc.AssistantMask) "nothing to train on"
                Expect.isEmpty enc.ImageSpans "no images"
            }

            test "one image: vision_start, N = t*h*w/merge^2 pads, vision_end" {
                let chat = Qwen25VLChat(qwen.Value)
                let image = ImagePart(1, 4, 4)
                Expect.equal image.TokenCount 4 "1*4*4/2^2"
                let enc = chat.Encode([ ChatMessage.User(image, TextPart "Describe this image.") ], addGenerationPrompt = true)
                Expect.equal enc.Text (systemDefault + "<|im_start|>user\n<|vision_start|>" + pads 4 + "<|vision_end|>Describe this image.<|im_end|>\n<|im_start|>assistant\n") "text"
                Expect.equal (List.ofArray enc.Ids)
                    (systemIds @ [ 151644; 872; 198; 151652; 151655; 151655; 151655; 151655; 151653; 74785; 419; 2168; 13; 151645; 198; 151644; 77091; 198 ]) "ids"
                Expect.equal (List.ofSeq enc.ImageSpans) [ struct (15, 4) ] "span of the pads"
            }

            test "two images and an explicit system prompt (no default one)" {
                let chat = Qwen25VLChat(qwen.Value)
                let messages =
                    [ ChatMessage.System "You are a radiologist."
                      ChatMessage.User(TextPart "Compare ", ImagePart(1, 2, 4), TextPart " with ", ImagePart(2, 2, 6), TextPart "\nWhich is worse?") ]
                let enc = chat.Encode(messages, addGenerationPrompt = true)
                Expect.equal enc.Text
                    ("<|im_start|>system\nYou are a radiologist.<|im_end|>\n<|im_start|>user\nCompare <|vision_start|>" + pads 2
                     + "<|vision_end|> with <|vision_start|>" + pads 6 + "<|vision_end|>\nWhich is worse?<|im_end|>\n<|im_start|>assistant\n") "text"
                Expect.equal (List.ofArray enc.Ids)
                    [ 151644; 8948; 198; 2610; 525; 264; 11900; 16155; 13; 151645; 198; 151644; 872; 198; 27374; 220; 151652; 151655; 151655; 151653
                      448; 220; 151652; 151655; 151655; 151655; 151655; 151655; 151655; 151653; 198; 23085; 374; 10960; 30; 151645; 198; 151644; 77091; 198 ] "ids"
                Expect.equal (List.ofSeq enc.ImageSpans) [ struct (17, 2); struct (23, 6) ] "one span per image"
            }

            test "multi-turn: the assistant mask covers each assistant content and its <|im_end|>, nothing else" {
                let chat = Qwen25VLChat(qwen.Value)
                let messages =
                    [ ChatMessage.User "Is there a fracture?"
                      ChatMessage.Assistant "No fracture is visible."
                      ChatMessage.User "Any effusion?"
                      ChatMessage.Assistant "<think>\nBlunted angle.\n</think>\nA small left effusion." ]
                let enc = chat.Encode messages
                Expect.equal enc.Text
                    (systemDefault + "<|im_start|>user\nIs there a fracture?<|im_end|>\n<|im_start|>assistant\nNo fracture is visible.<|im_end|>\n"
                     + "<|im_start|>user\nAny effusion?<|im_end|>\n<|im_start|>assistant\n<think>\nBlunted angle.\n</think>\nA small left effusion.<|im_end|>\n") "text"
                let expectedIds =
                    systemIds
                    @ [ 151644; 872; 198; 3872; 1052; 264; 58804; 30; 151645; 198 ]
                    @ [ 151644; 77091; 198; 2753; 58804; 374; 9434; 13; 151645; 198 ]
                    @ [ 151644; 872; 198; 8610; 3289; 7560; 30; 151645; 198 ]
                    @ [ 151644; 77091; 198; 151667; 198; 4923; 27636; 9210; 624; 151668; 198; 32; 2613; 2115; 3289; 7560; 13; 151645; 198 ]
                Expect.equal (List.ofArray enc.Ids) expectedIds "ids"
                let masked = enc.AssistantMask |> Array.indexed |> Array.filter snd |> Array.map fst |> List.ofArray
                Expect.equal masked ([ 24..29 ] @ [ 43..57 ]) "assistant content + <|im_end|>, not headers or the trailing newline"
                Expect.equal (enc.Ids[29], enc.Ids[57]) (151645, 151645) "each masked run ends with <|im_end|>"
                Expect.equal (enc.Ids[23], enc.Ids[58]) (198, 198) "the header's newline and the final newline are not masked"
            }

            test "bad chat input is refused with what is wrong" {
                let chat = Qwen25VLChat(qwen.Value)
                let e1 = catchT<TokenizerException> (fun () -> chat.Encode [ ChatMessage("tool", [ TextPart "x" ]) ] |> ignore)
                Expect.stringContains e1.Message "tool" "role"
                let e2 = catchT<TokenizerException> (fun () -> chat.Encode [ ChatMessage.User "see <|image_pad|>" ] |> ignore)
                Expect.stringContains e2.Message "<|image_pad|>" "vision token in text"
                let e3 = catchT<TokenizerException> (fun () -> ImagePart(1, 3, 4).TokenCount |> ignore)
                Expect.stringContains e3.Message "merge_size" "grid not divisible"
            }
        ]

        testList "BPE trainer" [
            test "trains a Qwen2-format tokenizer.json that loads back, compresses and round-trips" {
                use dir = new TempDir()
                let corpus = syntheticCorpus 400
                let path = dir.File "tok/tokenizer.json"
                let tok = BpeTrainer.TrainToFile(corpus, path, BpeTrainerOptions(Merges = 100))
                Expect.equal (Directory.GetFiles(dir.File "tok") |> Array.map Path.GetFileName) [| "tokenizer.json" |] "only the file, no temporaries"
                Expect.equal tok.Definition.Merges.Count 100 "N merges"
                let merged = tok.Definition.Merges |> Seq.map (fun struct (a, b) -> a + b) |> Seq.distinct |> Seq.length
                Expect.equal tok.Definition.Vocab.Count (256 + merged) "256 bytes + one token per merged string"
                let first = tok.Definition.Vocab.Count
                let addedIds = tok.AddedTokens |> Seq.map (fun t -> t.Id) |> List.ofSeq
                Expect.equal addedIds [ first .. first + 22 + 4 - 1 ] "added tokens right after the vocabulary"
                Expect.equal (tok.EndOfText, tok.ImStart, tok.ImEnd, tok.ImagePad) (first, first + 1, first + 2, first + 12) "Qwen2.5-VL order"
                Expect.equal (tok.Encode "<think>x</think>") [| tok.TokenToId("<think>").Value; 120; tok.TokenToId("</think>").Value |] "reasoning tokens"
                Expect.isFalse (tok.IsSpecial(tok.TokenToId("<think>").Value)) "reasoning tokens are not special"
                let bytes = corpus |> List.sumBy (fun t -> Encoding.UTF8.GetByteCount t)
                let tokens = corpus |> List.sumBy (fun t -> tok.Encode(t).Length)
                Expect.isGreaterThan (float bytes / float tokens) 2.0 "merges compress the corpus (1.0 without merges)"
                for t in corpus do Expect.equal (tok.Decode(tok.Encode t)) t "round trip"
            }

            test "training is deterministic and refuses nothing it wrote (the strict reader accepts the file)" {
                use dir = new TempDir()
                let corpus = syntheticCorpus 100
                BpeTrainer.TrainToFile(corpus, dir.File "a.json", BpeTrainerOptions(Merges = 120)) |> ignore
                BpeTrainer.TrainToFile(corpus, dir.File "b.json", BpeTrainerOptions(Merges = 120, ReasoningTokens = true)) |> ignore
                Expect.equal (File.ReadAllBytes(dir.File "a.json")) (File.ReadAllBytes(dir.File "b.json")) "same bytes"
            }

            test "training stops when no pair is frequent enough" {
                let def = BpeTrainer.Train([ "ab ab cd" ], BpeTrainerOptions(Merges = 1000, ReasoningTokens = false))
                Expect.isLessThan def.Merges.Count 10 "few merges from a tiny corpus"
                Expect.equal def.AddedTokens.Count 22 "Qwen2.5-VL's added tokens only"
            }

            testPropertyWithConfig { propConfig with maxTest = 100 } "a trained tokenizer round-trips any text without added tokens" trainedRoundTrips

            test "the chat format works with a trained tokenizer" {
                let tok = Qwen2Tokenizer(BpeTrainer.Train(syntheticCorpus 100, BpeTrainerOptions(Merges = 100)))
                let enc = Qwen25VLChat(tok).Encode([ ChatMessage.User(ImagePart(1, 2, 2), TextPart "Fever?"); ChatMessage.Assistant "Yes." ])
                Expect.equal (List.ofSeq enc.ImageSpans) [ struct (enc.Ids |> Array.findIndex ((=) tok.ImagePad), 1) ] "one pad"
                Expect.equal (tok.Decode(Array.zip enc.Ids enc.AssistantMask |> Array.filter snd |> Array.map fst)) "Yes.<|im_end|>" "masked text"
            }
        ]

        testList "mmx tokenize" [
            test "encodes JSON lines and decodes them back" {
                let run (args: string list) (input: string) =
                    let old = Console.In
                    Console.SetIn(new StringReader(input))
                    try runMmx args finally Console.SetIn old
                let code, out, err = run [ "tokenize"; "--tokenizer"; fixtureTokenizerPath ] "{\"text\": \"Is there a fracture?<|im_end|>\"}\n"
                Expect.equal code 0 err
                let line = JsonNode.Parse(out.Trim())
                Expect.equal (line["ids"].AsArray() |> Seq.map (fun n -> n.GetValue<int>()) |> List.ofSeq) [ 3872; 1052; 264; 58804; 30; 151645 ] "ids"
                Expect.equal (line["text"].GetValue<string>()) "Is there a fracture?<|im_end|>" "text kept"
                let code2, out2, err2 = run [ "tokenize"; "--tokenizer"; fixtureTokenizerPath; "--decode" ] "{\"ids\": [3872, 1052, 151645]}\n"
                Expect.equal code2 0 err2
                Expect.equal (JsonNode.Parse(out2.Trim()).["text"].GetValue<string>()) "Is there<|im_end|>" "decoded"
                let code3, _, err3 = run [ "tokenize"; "--tokenizer"; fixtureTokenizerPath ] "{\"txt\": 1}\n"
                Expect.equal code3 2 "bad input is an error"
                Expect.stringContains err3 "line 1" "names the line"
            }
        ]
    ]
