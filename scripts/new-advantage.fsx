// Define a new group advantage in a few lines, check it against the laws of group-relative estimators, see what it
// does to real guideline rewards, and train with it for a few RL steps on the `tiny` model. Build first (`./mmx` builds
// on first use too), then run the script:
//
//   dotnet build src/MMedExpert.Cli -c Release -v q
//   dotnet fsi scripts/new-advantage.fsx
//
// An estimator is a plain function from the rewards of the G completions of one prompt to their advantages
// (float[] -> float[]), composed from the combinators in MMedExpert.Algebra.Advantages.Advantage.

// Everything from the CLI's output folder: one copy of each assembly, and TorchSharp's native libraries beside it.
#r "../src/MMedExpert.Cli/bin/Release/net10.0/TorchSharp.dll"
#r "../src/MMedExpert.Cli/bin/Release/net10.0/MMedExpert.Algebra.dll"
#r "../src/MMedExpert.Cli/bin/Release/net10.0/MMedExpert.Core.dll"
#r "../src/MMedExpert.Cli/bin/Release/net10.0/StbImageSharp.dll"
#r "../src/MMedExpert.Cli/bin/Release/net10.0/Spectre.Console.dll"

// TorchSharp's own probe does not look in runtimes/<rid>/native (where the build puts the native library, patched to
// load on this system's libstdc++); load it from there before the first tensor.
let private nativeDir = System.IO.Path.Combine(__SOURCE_DIRECTORY__, "../src/MMedExpert.Cli/bin/Release/net10.0/runtimes/linux-x64/native")
if System.OperatingSystem.IsLinux() then
    System.Runtime.InteropServices.NativeLibrary.Load(System.IO.Path.Combine(nativeDir, "libLibTorchSharp.so")) |> ignore

open MMedExpert.Algebra.Advantages
open MMedExpert.Algebra.Rewards

// ---- 1. the idea ------------------------------------------------------------------------------------------------
// Compare each completion with the mean of the others (RLOO's baseline), then divide by the group's spread so every
// prompt contributes on the same scale (GRPO's normalisation), with epsilon 0 to keep it affine-invariant.
let myAdvantage : float[] -> float[] =
    Advantage.baseline Advantage.leaveOneOutMean >> Advantage.scaleByStd Population 0.0

// A variant that also bounds outliers. Clipping is a common trick; the laws below show what it costs: once an advantage
// is clipped the group no longer sums to 0 (the update is no longer a pure redistribution of credit) and Σ A² shrinks.
let myClippedAdvantage : float[] -> float[] =
    myAdvantage >> Advantage.clip -2.0 2.0

// ---- 2. the laws ------------------------------------------------------------------------------------------------
// The same law checks the test suite runs (AdvantageLaws), on 500 random groups with huge (1e300), tiny (1e-300) and
// subnormal rewards, ties, G = 1 and all-equal groups. A FAIL line shows the first counterexample.
let extraLaws = [ AdvantageLaws.positiveAffineInvariant; AdvantageLaws.sumOfSquares "G" float ]

for name, estimator in [ "myAdvantage", myAdvantage; "myClippedAdvantage", myClippedAdvantage ] do
    printfn "== laws of %s" name
    printfn "%s\n" (AdvantageLaws.checkWith (AdvantageLaws.core @ extraLaws) 500 17 estimator |> AdvantageLaws.format)

// ---- 3. next to the built-ins on one group ------------------------------------------------------------------------
let rewards = [| 1.0; 0.0; 0.0; 0.5; 1.0; 0.0 |]
let show (xs: float[]) = xs |> Array.map (sprintf "%+.3f") |> String.concat " "
printfn "== advantages of the rewards %s" (show rewards)
for name, estimator in
    [ "grpo", Estimators.grpo GrpoOptions.Default
      "drgrpo", Estimators.drGrpo
      "rloo", Estimators.rloo
      "myAdvantage", myAdvantage
      "myClippedAdvantage", myClippedAdvantage ] do
    printfn "%-20s %s" name (show (estimator rewards))

// ---- 4. on guideline rewards ------------------------------------------------------------------------------------
// Four completions of one sample, scored by the default guideline spec (four perspectives), then turned into
// advantages by GBA (each perspective normalised by the new estimator, weighted per sample) and by the new estimator
// on the weighted reward, as the trainer would with Estimator.Custom.
let spec = DefaultSpec.load ()
let sample =
    { Annotations.Empty with
        Answer = "B"
        Options = Map [ "A", "Pneumonia"; "B", "Pulmonary embolism"; "C", "Aortic dissection" ]
        KeyFindings = [ "tachycardia"; "hypoxia"; "wedge-shaped opacity" ]
        PretestProbability = Some 0.3
        QuestionType = "diagnosis"
        Perspective = "bayesian" }
let completions =
    [| "<think>The CT shows a wedge-shaped opacity; tachycardia and hypoxia. Pre-test probability 30%; a likelihood ratio of 10 gives a post-test probability near 80%. Differential: pneumonia versus PE; the D-dimer distinguishes them. Therefore PE.</think><answer>B</answer>"
       "<think>Fever and consolidation suggest pneumonia.</think><answer>A</answer>"
       "B"
       "<think>Tachycardia and hypoxia with a wedge-shaped opacity: a classic pulmonary embolism pattern.</think><answer>B</answer>" |]
    |> Array.map Completion.OfText
let strategies = [| 3; 3; 1; 1 |] // sampled with the bayesian and the intuitive guideline prompts
let group, scores = GuidelineRewards.rolloutGroup spec sample completions strategies

printfn "\n== guideline rewards (%s)" (String.concat ", " (GuidelineSpec.perspectiveNames spec))
scores |> Array.iteri (fun i s -> printfn "completion %d: %s" i (show s.Rewards))
printfn "perspective weights for this sample: %s" (show group.Weights)
let gbaWithMine = Gba.multiStrategy (Gba.centeredSplit 0.5) group.Strategies (Gba.multiPerspective myAdvantage group.Weights group.Rewards)
let advantagesOf estimator = (Estimator.apply estimator [| group |]).[0]
printfn "%-38s %s" "GBA (default)" (show (advantagesOf (Gba GbaOptions.Default)))
printfn "%-38s %s" "GBA with myAdvantage per perspective" (show gbaWithMine)
printfn "%-38s %s" "Estimator.Custom myAdvantage" (show (advantagesOf (Custom("my-advantage", myAdvantage))))

// ---- 5. a short RL run with it -------------------------------------------------------------------------------------
// The C# GRPO trainer with Estimator.Custom: a random `tiny` Qwen2.5-VL over a byte-level BPE trained on a few lines,
// a fresh LoRA adapter, two prompts, G = 4 samples each, guideline rewards from the default spec, KL to the base.
// A random model rarely produces the <think>/<answer> format, so expect small rewards; the point is the plumbing:
// your estimator turns those rewards into the advantages of a real policy-gradient step (swap in a trained base with
// `mmx gba --base DIR --adapter DIR ...` for a real run).
open System.IO
open MMedExpert.Core.Lora
open MMedExpert.Core.Model
open MMedExpert.Core.Model.Generation
open MMedExpert.Core.Tokenization
open MMedExpert.Core.Training
open MMedExpert.Core.Training.Grpo

TorchSharp.torch.set_num_threads 2
let question (a: Annotations) (text: string) =
    let options = a.Options |> Map.toList |> List.map (fun (k, v) -> $"{k}. {v}") |> String.concat "\n"
    $"{text}\n\nOptions:\n{options}\n\nThink step by step inside <think></think>, then give only the letter inside <answer></answer>."
let prompts =
    [ sample, "A 54-year-old with sudden dyspnoea, tachycardia and hypoxia; CT shows a wedge-shaped opacity. Most likely diagnosis?"
      { sample with Answer = "A"; KeyFindings = [ "fever"; "consolidation" ]; Perspective = "intuitive" },
      "A 30-year-old with fever, productive cough and consolidation of the right lower lobe. Most likely diagnosis?" ]
let tokenizer =
    Qwen2Tokenizer(BpeTrainer.Train([ for a, t in prompts -> question a t ] @ List.ofArray (completions |> Array.map (fun c -> c.Text)),
                                    BpeTrainerOptions(Merges = 300), "new-advantage-bpe"))
let model = Qwen25VL.CreateRandom(Qwen25VLConfig.Preset("tiny").WithTokenizer(tokenizer), 1L)
let adapters = new LoraAdapters(model)
adapters.Add("expert", LoraConfig(R = 8, Alpha = 16.0, Init = LoraInit.Gaussian), 1L)
let runDir = Path.Combine(Path.GetTempPath(), "mmx-new-advantage")
let options =
    MMedExpert.Core.Training.Grpo.GrpoOptions(
        Steps = 4, PromptsPerStep = 2, GroupSize = 4, MaxNewTokens = 24, Temperature = 1.0, LearningRate = 1e-3, Seed = 1L,
        CheckpointEvery = 0, OutputDir = runDir, Loss = GrpoLossOptions(Beta = 0.02))
let trainer =
    new GrpoTrainer(Qwen25VLGenerator(model, fun ids -> tokenizer.Decode ids), adapters, "expert",
                    VisionChatEncoder(tokenizer, MMedExpert.Core.Vision.ImageProcessor()), spec,
                    Custom("my-advantage", myAdvantage), [ for a, t in prompts -> RlSample(VisionChatSample([||], question a t), a) ],
                    options)
let run = trainer.Run()
printfn "\n== RL with Estimator.Custom \"my-advantage\" on tiny (%d steps, metrics in %s)" run.LastStep trainer.MetricsPath
let columns = [ "reward_mean" ] @ [ for p in GuidelineSpec.perspectiveNames spec -> "reward_" + p ] @ [ "advantage_std"; "kl"; "loss"; "response_length" ]
printfn "%-5s %s" "step" (columns |> List.map (sprintf "%22s") |> String.concat "")
for line in MetricsWriter.Read trainer.MetricsPath do
    let value (k: string) = line[k].GetValue<float>()
    printfn "%-5d %s" (line["step"].GetValue<int64>()) (columns |> List.map (fun k -> sprintf "%22.4f" (value k)) |> String.concat "")
