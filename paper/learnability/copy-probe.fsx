// Learnability probe: can the embedded `small` model learn to COPY two words from its prompt within 200 steps, and does
// the presence of image tokens change that? Each sample is only "Imaging report: W1; W2. List the imaging findings."
// (from a MedSynth set made with --imaging-report) and the answer "Key findings: W1; W2."; the loss is averaged over
// 20-step chunks. With copying learned the loss goes to ~0; guessing both words costs about 2·ln 2 / 12 ≈ 0.12 nats.
//
//   ./mmx data synth --out /tmp/ms-report --imaging-report
//   ./mmx pipeline --config paper/learnability/report.json   # or any run: only its tokenizer is used below
//   dotnet fsi paper/learnability/copy-probe.fsx DATA_DIR TOKENIZER_JSON MODE
//
// MODE: text (no image), images (the image in the prompt, tower trained), frozen (tower frozen at its random init),
// zero (frozen and its output zeroed: the image tokens carry nothing).
#load "../../scripts/References.fsx"
open TorchSharp
open References
open MMedExpert.Core.Model
open MMedExpert.Core.Tokenization
open MMedExpert.Core.Vision
open MMedExpert.Core.Training
open MMedExpert.Core.Training.Sft
open MMedExpert.Data.Schema
open MMedExpert.Data.MedSynth

if scriptArgs.Length <> 3 then
    eprintfn "usage: dotnet fsi paper/learnability/copy-probe.fsx DATA_DIR TOKENIZER_JSON text|images|frozen|zero"
    exit 2
let dataDir, tokenizerPath, mode = scriptArgs[0], scriptArgs[1], scriptArgs[2]
let tokenizer = Qwen2Tokenizer.FromFile tokenizerPath
let encoder = VisionChatEncoder(tokenizer, ImageProcessor(ImageProcessorConfig()))
let items = (MedItemLoader.Load(System.IO.Path.Combine(dataDir, "sft.jsonl"), false)).Items
let samples =
    [ for item in items ->
        let q = item.Question
        let at = q.IndexOf MedSynthGenerator.ReportPrefix
        if at < 0 then failwithf "%s: no imaging report (generate the data with --imaging-report)" item.Id
        let report = q.Substring(at, q.IndexOf('.', at) - at + 1)
        let findings = MedItemSamples.CompactFindings item
        let images = if mode = "text" then [||] else (MedItemSamples.Prompt(item, dataDir)).ImagePaths |> Seq.toArray
        VisionChatSample(images, report + " List the imaging findings.", $"Key findings: {findings[0]}; {findings[1]}.") ]
let model = Qwen25VL.CreateRandom(Qwen25VLConfig.Preset("small").WithTokenizer(tokenizer), 1L)
if mode = "frozen" || mode = "zero" then
    for p in model.visual.parameters() do p.requires_grad <- false
if mode = "zero" then
    use _ = torch.no_grad()
    for struct (name, p) in model.visual.named_parameters() do
        if name.StartsWith "merger.mlp.2" then p.zero_() |> ignore
let trainable = model.parameters() |> Seq.filter (fun p -> p.requires_grad) |> Seq.toList
let options = TrainerOptions(LearningRate = 2e-3, WarmupSteps = 10, TotalSteps = 200, ClipNorm = 1.0, Seed = 1L, Description = "copy probe")
let run = SftRunner.Train(model, encoder, samples, trainable, options, 8)
printfn "%s: loss per 20 steps: %s" mode (run.Losses |> Seq.chunkBySize 20 |> Seq.map (fun c -> sprintf "%.3f" (Seq.average c)) |> String.concat " ")
