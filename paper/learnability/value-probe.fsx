// Learnability probe for the numeric clinical findings: does the `small` model read a threshold sooner when its answer
// first copies the measured value and then judges it ("38.9 °C, febrile") than when it must judge at once ("febrile")?
// Trains a fresh model (all parameters, 2e-3, batch 8) on the adult_medicine case texts of the SFT split → their two
// clinical findings, in one of two answer forms, then decodes held-out test items greedily and counts each finding's
// judgement (the word the guideline reads) right. Chance: fever 50 %, smoking 1 in 3 as written (never / light / heavy).
//
//   dotnet fsi paper/learnability/value-probe.fsx DATA_DIR TOKENIZER_JSON judge|value [STEPS]     (default 300 steps)
#load "../../scripts/References.fsx"
open System
open System.IO
open References
open MMedExpert.Core.Model
open MMedExpert.Core.Model.Generation
open MMedExpert.Core.Tokenization
open MMedExpert.Core.Vision
open MMedExpert.Core.Training
open MMedExpert.Core.Training.Sft
open MMedExpert.Data.Schema

if scriptArgs.Length < 3 then
    eprintfn "usage: dotnet fsi paper/learnability/value-probe.fsx DATA_DIR TOKENIZER_JSON judge|value [STEPS]"
    exit 2
let dataDir, tokenizerPath, mode = scriptArgs[0], scriptArgs[1], scriptArgs[2]
let steps = if scriptArgs.Length > 3 then Int32.Parse scriptArgs[3] else 300
let tokenizer = Qwen2Tokenizer.FromFile tokenizerPath
let encoder = VisionChatEncoder(tokenizer, ImageProcessor(ImageProcessorConfig()))
/// "febrile (38.9 °C)" → "38.9 °C, febrile"; a finding without a measured detail stays as it is.
let valueFirst (f: string) =
    let at = f.LastIndexOf(" (")
    if f.EndsWith ")" && at > 0 then $"{f[at + 2 .. f.Length - 2]}, {f[.. at - 1]}" else f
let answer (item: MedItem) =
    let full, judged = item.Guideline.KeyFindings, MedItemSamples.CompactFindings item
    match mode with
    | "judge" -> $"Key findings: {judged[2]}; {judged[3]}."
    | "value" -> $"Key findings: {valueFirst full[2]}; {valueFirst full[3]}."
    | m -> failwithf "unknown mode %s" m
let adult split = (MedItemLoader.Load(Path.Combine(dataDir, split + ".jsonl"), false)).Items |> Seq.filter (fun i -> i.Specialty = "adult_medicine")
let train = adult "sft" |> Seq.map (fun i -> VisionChatSample([||], i.Question, answer i)) |> Seq.toList
let test = adult "test" |> Seq.truncate 100 |> Seq.toList
let model = Qwen25VL.CreateRandom(Qwen25VLConfig.Preset("small").WithTokenizer(tokenizer), 1L)
let options = TrainerOptions(LearningRate = 2e-3, WarmupSteps = 20, TotalSteps = steps, ClipNorm = 1.0, Seed = 1L, Description = "value probe")
let run = SftRunner.Train(model, encoder, train, model.parameters() |> Seq.toList, options, 8)
printfn "%s: loss per %d steps: %s" mode (steps / 10) (run.Losses |> Seq.chunkBySize (max 1 (steps / 10)) |> Seq.map (fun c -> sprintf "%.3f" (Seq.average c)) |> String.concat " ")
let generator = Qwen25VLGenerator(model, fun ids -> tokenizer.Decode(ids, skipSpecial = true))
let right = Array.zeroCreate 2
for chunk in test |> List.chunkBySize 20 do
    let prompts = encoder.Prompts(chunk |> List.map (fun i -> VisionChatSample([||], i.Question)))
    let outputs = generator.Generate(prompts, GenerationOptions(MaxNewTokens = 40, StopTokenIds = encoder.StopTokenIds))
    for item, output in List.zip chunk (List.ofSeq outputs) do
        let judged = MedItemSamples.CompactFindings item
        let text = output.Text
        if right[0] + right[1] = 0 || item = test.Head then printfn "  e.g. %s → %s" (String.Join("; ", item.Guideline.KeyFindings |> Seq.skip 2)) text
        let slots = (if text.StartsWith "Key findings: " then text.["Key findings: ".Length ..] else "").TrimEnd('.').Split("; ")
        for k in 0 .. 1 do
            // The judgement is the slot itself (judge) or what follows the copied value (value).
            let said = if k < slots.Length then (let s = slots[k] in match s.LastIndexOf ", " with -1 -> s | at -> s[at + 2 ..]) else ""
            if said = judged[2 + k] then right[k] <- right[k] + 1
printfn "%s, %d steps: fever judged right on %d of %d held-out items, smoking on %d of %d" mode steps right[0] test.Length right[1] test.Length
