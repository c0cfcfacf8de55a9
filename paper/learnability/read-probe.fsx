// Learnability probe: how fast does the embedded `small` model learn to READ the two clinical findings of one specialty
// from the case text alone (no image, no options, no instruction)? Trains a fresh model (all parameters, 2e-3, batch 8)
// on "case text" → "Key findings: C1; C2." for the adult_medicine items of the SFT split, then counts held-out test items
// whose whole answer is predicted exactly under teacher forcing (both findings right; chance about 1 in 6: fever is
// 2-valued, smoking 3-valued as written: never / light / heavy).
//
//   dotnet fsi paper/learnability/read-probe.fsx DATA_DIR TOKENIZER_JSON [STEPS]     (default 300 steps)
#load "../../scripts/References.fsx"
open System
open System.IO
open TorchSharp
open References
open MMedExpert.Core.Model
open MMedExpert.Core.Tokenization
open MMedExpert.Core.Vision
open MMedExpert.Core.Training
open MMedExpert.Core.Training.Sft
open MMedExpert.Data.Schema

if scriptArgs.Length < 2 then
    eprintfn "usage: dotnet fsi paper/learnability/read-probe.fsx DATA_DIR TOKENIZER_JSON [STEPS]"
    exit 2
let dataDir, tokenizerPath = scriptArgs[0], scriptArgs[1]
let steps = if scriptArgs.Length > 2 then Int32.Parse scriptArgs[2] else 300
let tokenizer = Qwen2Tokenizer.FromFile tokenizerPath
let encoder = VisionChatEncoder(tokenizer, ImageProcessor(ImageProcessorConfig()))
let sample (item: MedItem) =
    let f = MedItemSamples.CompactFindings item
    VisionChatSample([||], item.Question, $"Key findings: {f[2]}; {f[3]}.")
let adult split = (MedItemLoader.Load(Path.Combine(dataDir, split + ".jsonl"), false)).Items |> Seq.filter (fun i -> i.Specialty = "adult_medicine")
let train = adult "sft" |> Seq.map sample |> Seq.toList
let test = adult "test" |> Seq.truncate 100 |> Seq.map sample |> Seq.toList
let model = Qwen25VL.CreateRandom(Qwen25VLConfig.Preset("small").WithTokenizer(tokenizer), 1L)
let options = TrainerOptions(LearningRate = 2e-3, WarmupSteps = 20, TotalSteps = steps, ClipNorm = 1.0, Seed = 1L, Description = "read probe")
let run = SftRunner.Train(model, encoder, train, model.parameters() |> Seq.toList, options, 8)
printfn "loss per %d steps: %s" (steps / 10) (run.Losses |> Seq.chunkBySize (max 1 (steps / 10)) |> Seq.map (fun c -> sprintf "%.3f" (Seq.average c)) |> String.concat " ")
let exact =
    test |> List.filter (fun s ->
        use _ = torch.no_grad ()
        use b = encoder.Training([ s ])
        let predicted = model.forward(b.InputIds, b.AttentionMask, b.PixelValues, b.ImageGridThw).argmax(-1L)[0]
        predicted.eq(b.InputIds.roll(-1L, 1L)[0]).masked_select(b.LossMask[0]).all().item<bool>())
printfn "both clinical findings exact (teacher-forced) on %d of %d held-out adult_medicine items" exact.Length test.Length
