/// The smallest real setup for training tests: a BPE tokenizer trained here on a few clinical sentences, the `tiny`
/// Qwen2.5-VL preset bound to it, 56×56 PNG images (one merged 2×2 grid = 4 image tokens each) and chat samples.
module MMedExpert.Tests.TinyVlm

open System
open System.IO
open System.Threading
open MMedExpert.Algebra.Rewards
open MMedExpert.Core.Model
open MMedExpert.Core.Tokenization
open MMedExpert.Core.Training
open MMedExpert.Core.Training.Grpo
open MMedExpert.Core.Vision

/// (question, options, answer letter, reasoning trace) of the test items.
let items =
    [ "Chest radiograph of a smoker with cough and fever. What is the most likely diagnosis?",
      [ "A", "Pneumonia"; "B", "Pneumothorax"; "C", "Normal chest" ], "A",
      "<think>The image shows a dense opacity in the right lower lobe with fever: consolidation. Therefore pneumonia.</think><answer>A</answer>"
      "Fundus photograph of a diabetic patient with blurred vision. What is the most likely diagnosis?",
      [ "A", "Glaucoma"; "B", "Diabetic retinopathy"; "C", "Normal fundus" ], "B",
      "<think>The image shows microaneurysms and hemorrhages in a diabetic patient. Therefore diabetic retinopathy.</think><answer>B</answer>"
      "Brain MRI of a child with headache and vomiting. What is the most likely diagnosis?",
      [ "A", "Migraine"; "B", "Sinusitis"; "C", "Posterior fossa tumor" ], "C",
      "<think>The image shows a mass in the posterior fossa with headache and vomiting. Therefore a tumor.</think><answer>C</answer>"
      "Histology slide of a breast lump in an older woman. What is the most likely diagnosis?",
      [ "A", "Invasive carcinoma"; "B", "Fibroadenoma"; "C", "Normal tissue" ], "A",
      "<think>The image shows irregular nests of atypical cells invading the stroma. Therefore invasive carcinoma.</think><answer>A</answer>" ]

let userText (question: string) (options: (string * string) list) =
    let lines = options |> List.map (fun (k, v) -> $"{k}. {v}") |> String.concat "\n"
    $"{question}\nOptions:\n{lines}\nThink step by step inside <think></think>, then give the letter inside <answer></answer>."

/// Qwen2-format byte-level BPE with Qwen2.5-VL's added tokens and the reasoning tags, trained on the items' text.
let tokenizer =
    lazy
        (let corpus =
            [ for q, o, _, r in items do
                yield userText q o
                yield r
              yield "system\nYou are a helpful assistant.\nuser\nassistant\n" ]
         Qwen2Tokenizer(BpeTrainer.Train(corpus, BpeTrainerOptions(Merges = 300), "tiny-test-tokenizer")))

/// The `tiny` preset over the test tokenizer (vocabulary of a few hundred tokens).
let config () = Qwen25VLConfig.Preset("tiny").WithTokenizer(tokenizer.Value)

let model (seed: int64) = Qwen25VL.CreateRandom(config (), seed)

let encoder () = VisionChatEncoder(tokenizer.Value, ImageProcessor())

/// A 56×56 RGB PNG of seeded noise (56×56 is one 4×4 patch grid: 4 image tokens after the 2×2 merge).
let writePng (path: string) (seed: int) =
    let rng = Random(seed)
    let pixels = Array.init (56 * 56 * 3) (fun _ -> byte (rng.Next 256))
    use stream = File.Create path
    StbImageWriteSharp.ImageWriter().WritePng(pixels, 56, 56, StbImageWriteSharp.ColorComponents.RedGreenBlue, stream)
    path

/// The items as SFT samples; items 0 and 2 carry an image written into <paramref name="dir"/>.
let sftSamples (dir: string) : VisionChatSample list =
    items
    |> List.mapi (fun i (q, o, _, r) ->
        let images = if i % 2 = 0 then [| writePng (Path.Combine(dir, $"item{i}.png")) i |] else [||]
        VisionChatSample(images, userText q o, r))

/// The items as RL prompts with their reward annotations.
let rlSamples (dir: string) : RlSample list =
    List.zip (sftSamples dir) items
    |> List.map (fun (s, (_, o, answer, _)) ->
        RlSample(VisionChatSample(s.ImagePaths, s.UserText),
                 { Annotations.Empty with
                     Answer = answer
                     Options = Map.ofList o
                     KeyFindings = [ "image shows" ]
                     QuestionType = "diagnosis" }))

/// Progress that cancels the run once step <paramref name="k"/> is reported (an interruption at a known step).
type CancelAfter(k: int64, source: CancellationTokenSource) =
    inherit ProgressReporter()
    override _.Run(_description, _total, _start, body) =
        body.Invoke(Action<int64, string>(fun position _ -> if position >= k then source.Cancel()))
