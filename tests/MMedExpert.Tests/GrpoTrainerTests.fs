module MMedExpert.Tests.GrpoTrainerTests

open System
open System.Collections.Generic
open System.IO
open System.Threading
open Expecto
open MMedExpert.Algebra.Advantages
open MMedExpert.Algebra.Rewards
open MMedExpert.Core.Lora
open MMedExpert.Core.Model
open MMedExpert.Core.Model.Generation
open MMedExpert.Core.Training
open MMedExpert.Core.Training.Grpo
open MMedExpert.Tests.TestKit
open MMedExpert.Tests.TinyVlm

/// A tiny model with a fresh Gaussian adapter "rl" (B = 0: the policy starts as the base) and a GRPO trainer over it.
type private Setup(dir: string, options: GrpoOptions, estimator: Estimator, ?progress: ProgressReporter) =
    let m = model 5L
    let adapters = new LoraAdapters(m)
    do adapters.Add("rl", LoraConfig(R = 8, Alpha = 16.0, Dropout = 0.0, Init = LoraInit.Gaussian), 3L)
    let tok = tokenizer.Value
    let generator = Qwen25VLGenerator(m, Func<IReadOnlyList<int>, string>(fun ids -> tok.Decode(ids)))
    let trainer =
        new GrpoTrainer(generator, adapters, "rl", encoder (), DefaultSpec.load (), estimator, rlSamples dir, options,
                        defaultArg progress ProgressReporter.None)
    member _.Trainer = trainer
    member _.Generator = generator
    interface IDisposable with
        member _.Dispose() =
            trainer.Dispose()
            adapters.Dispose()
            m.Dispose()

let private runOptionsWith (groupSize: int) (dir: string) =
    GrpoOptions(Steps = 2, PromptsPerStep = 2, GroupSize = groupSize, MaxNewTokens = 12, Temperature = 1.0, CheckpointEvery = 1,
                LearningRate = 1e-3, Seed = 7L, MultiStrategy = true, OutputDir = dir,
                Loss = GrpoLossOptions(Beta = 0.04))

let private runOptions = runOptionsWith 4

/// Fields that depend on the wall clock, not on the run.
let private timing = set [ "generation_s"; "learning_s"; "rollout_tokens_per_s" ]

let private deterministicFields (path: string) =
    [ for line in MetricsWriter.Read path ->
        [ for KeyValue(k, v) in line do
            if not (timing.Contains k) then yield k, v.ToJsonString() ] ]

[<Tests>]
let tests =
    testList "GrpoTrainer" [
        test "rollouts never sample the vision placeholders (a completion with <|image_pad|> could not be scored)" {
            let suppress = encoder().SuppressTokenIds
            let tok = tokenizer.Value
            Expect.containsAll suppress [ for t in [ "<|image_pad|>"; "<|vision_start|>"; "<|vision_end|>" ] -> (tok.TokenToId t).Value ] "placeholders listed"
            // Logits that favour the image pad by far: greedy and sampled picks avoid it once it is suppressed.
            let logits = TorchSharp.torch.zeros(16L, int64 tok.VocabSize)
            logits.index_fill_(1L, TorchSharp.torch.tensor([| int64 (tok.TokenToId "<|image_pad|>").Value |]), TorchSharp.Scalar.op_Implicit 50.0) |> ignore
            use g = new TorchSharp.torch.Generator(1UL)
            let pick temperature (ids: int list) =
                (TokenSampler.Sample(logits, GenerationOptions(Temperature = temperature, SuppressTokenIds = ResizeArray ids), g)).data<int64>().ToArray()
            let pad = int64 (tok.TokenToId "<|image_pad|>").Value
            Expect.isTrue (pick 0.0 [] |> Array.forall ((=) pad)) "without suppression the pad wins"
            Expect.isTrue (pick 0.0 (List.ofSeq suppress) |> Array.forall ((<>) pad)) "greedy avoids it"
            Expect.isTrue (pick 1.0 (List.ofSeq suppress) |> Array.forall ((<>) pad)) "sampling avoids it"
        }

        test "shared-prompt scoring (each prompt encoded once per group) equals scoring every sequence whole, gradients included" {
            use dir = new TempDir()
            let tok = tokenizer.Value
            use m = model 8L
            use adapters = new LoraAdapters(m)
            adapters.Add("p", LoraConfig(R = 4, Alpha = 8.0, Dropout = 0.0, Init = LoraInit.PiSSA), 2L)
            adapters.SetActive "p"
            let ps = adapters.TrainableParameters "p"
            let generator = Qwen25VLGenerator(m)
            let samples = rlSamples dir.Path
            let withImage, textOnly = samples[0].Prompt, samples[1].Prompt // different lengths: the shorter one is left-padded
            let completions =
                [ "<think>The image shows consolidation.</think><answer>A</answer>"; "B"; "<answer>C</answer>"; "no"; "<think>x</think>" ]
                |> List.map (fun t -> tok.Encode t :> IReadOnlyList<int>)
            let promptOf = [| 0; 1; 0; 1; 0 |]
            let run (score: unit -> TorchSharp.torch.Tensor * TorchSharp.torch.Tensor) =
                for p in ps do (if not (isNull p.grad) then p.grad.zero_() |> ignore)
                let lp, mask = score ()
                (lp * mask).sum().backward()
                lp.detach().clone(), mask.clone(), [ for p in ps -> p.grad.clone() ]
            let wholeLp, wholeMask, wholeGrads =
                run (fun () ->
                    let prompts = encoder().Prompts([ for i in promptOf -> if i = 0 then withImage else textOnly ])
                    generator.CompletionLogProbs(prompts, completions).ToTuple())
            let sharedLp, sharedMask, sharedGrads =
                run (fun () -> generator.SharedPromptLogProbs(encoder().Prompts([ withImage; textOnly ]), promptOf, completions).ToTuple())
            Expect.isTrue (sameTensor wholeMask sharedMask) "same right-aligned layout"
            Expect.isLessThan (float ((wholeLp - sharedLp).abs().max().item<float32>())) 1e-4 "same log-probabilities"
            for g1, g2 in List.zip wholeGrads sharedGrads do
                let scale = max 1e-6 (float (g1.abs().max().item<float32>()))
                Expect.isLessThan (float ((g1 - g2).abs().max().item<float32>()) / scale) 1e-3 "same gradient"
        }

        test "shared-prompt generation equals generating from every prompt written out (greedy)" {
            use dir = new TempDir()
            let tok = tokenizer.Value
            use m = model 8L
            let generator = Qwen25VLGenerator(m, Func<IReadOnlyList<int>, string>(fun ids -> tok.Decode(ids)))
            let samples = rlSamples dir.Path
            let promptOf = [| 0; 1; 1; 0 |]
            let options = GenerationOptions(MaxNewTokens = 10, Temperature = 0.0, StopTokenIds = encoder().StopTokenIds)
            let whole = generator.Generate(encoder().Prompts([ for i in promptOf -> samples[i].Prompt ]), options)
            let shared = generator.Generate(encoder().Prompts([ samples[0].Prompt; samples[1].Prompt ]), promptOf, options)
            for a, b in Seq.zip whole shared do
                Expect.sequenceEqual b.TokenIds a.TokenIds "same tokens"
                Expect.equal b.Text a.Text "same text"
                for x, y in Seq.zip a.LogProbs b.LogProbs do
                    Expect.isLessThan (abs (float x - float y)) 1e-4 "same log-probabilities"
        }

        testList "one GRPO step on tiny raises the log-prob of the highest-advantage completion" [
          for updates in [ 1; 2 ] ->
           test $"μ = {updates}" {
            use dir = new TempDir()
            use s = new Setup(dir.Path, GrpoOptions(UpdatesPerBatch = updates, Loss = GrpoLossOptions(Beta = 0.04)), Estimator.parse "grpo")
            let tok = tokenizer.Value
            let prompt = (rlSamples dir.Path |> List.head).Prompt
            let imEnd = (tok.TokenToId "<|im_end|>").Value
            let completions =
                [ "<think>The image shows a dense opacity. Therefore pneumonia.</think><answer>A</answer>"
                  "<think>Normal.</think><answer>C</answer>"
                  "<answer>B</answer>"
                  "pneumothorax" ]
                |> List.map (fun t -> Array.append (tok.Encode t) [| imEnd |] :> IReadOnlyList<int>)
            let score () =
                let prompts = encoder().Prompts(List.replicate completions.Length prompt)
                s.Generator.ScoreCompletions(prompts, completions) |> Seq.map (Array.sumBy float) |> Array.ofSeq
            let before = score ()
            let advantages = [| 1.5f; -0.5f; -0.5f; -0.5f |]
            let rollouts =
                [ for c, lp in List.zip completions (List.ofSeq (s.Generator.ScoreCompletions(encoder().Prompts(List.replicate 4 prompt), completions))) ->
                    GrpoTrainer.RolloutForUpdate(prompt, c, lp) ]
            let stats = s.Trainer.Learn(rollouts, advantages, 1e-3)
            let after = score ()
            Expect.isGreaterThan after[0] before[0] $"log π of the best completion rises ({before[0]:F4} → {after[0]:F4})"
            let weighted (lp: float[]) = Array.map2 (fun a l -> float a * l) advantages lp |> Array.sum
            Expect.isGreaterThan (weighted after) (weighted before) "Σ A·log π rises (the step follows the policy gradient)"
            Expect.isGreaterThan stats.GradNorm 0.0 "a gradient reached the adapter"
            if updates = 1 then
                Expect.equal stats.ClipFraction 0.0 "on-policy: nothing clipped"
                Expect.floatClose Accuracy.high stats.Kl 0.0 "the policy equals the reference before the step (B = 0)"
            else
                Expect.isGreaterThan stats.Kl 0.0 "the second update starts away from the reference"
           } ]

        test "the KL reference is the adapter RL starts from (an SFT expert), not the base: KL 0 before the first update, > 0 against the base" {
            use dir = new TempDir()
            let tok = tokenizer.Value
            let prompt = (rlSamples dir.Path |> List.head).Prompt
            let imEnd = (tok.TokenToId "<|im_end|>").Value
            let completions =
                [ "<think>Dense opacity. Therefore pneumonia.</think><answer>A</answer>"; "<answer>B</answer>" ]
                |> List.map (fun t -> Array.append (tok.Encode t) [| imEnd |] :> IReadOnlyList<int>)
            let klBeforeFirstUpdate reference =
                use m = model 5L
                use adapters = new LoraAdapters(m)
                adapters.Add("rl", LoraConfig(R = 8, Alpha = 16.0, Dropout = 0.0, Init = LoraInit.Gaussian), 3L)
                // A trained expert: B ≠ 0, so the adapter's policy differs from the base's.
                do
                    use _ = TorchSharp.torch.no_grad ()
                    for w in adapters.Modules "rl" do w.B.normal_(0.0, 0.5) |> ignore
                let generator = Qwen25VLGenerator(m, Func<IReadOnlyList<int>, string>(fun ids -> tok.Decode(ids)))
                let options = GrpoOptions(KlReference = reference, Loss = GrpoLossOptions(Beta = 0.04))
                let trainer = new GrpoTrainer(generator, adapters, "rl", encoder (), DefaultSpec.load (), Estimator.parse "grpo", rlSamples dir.Path, options)
                adapters.SetActive "rl"
                let logProbs = generator.ScoreCompletions(encoder().Prompts(List.replicate 2 prompt), completions) |> List.ofSeq
                let rollouts = [ for c, lp in List.zip completions logProbs -> GrpoTrainer.RolloutForUpdate(prompt, c, lp) ]
                let stats = trainer.Learn(rollouts, [| 1.0f; -1.0f |], 1e-3)
                (trainer :> IDisposable).Dispose()
                Expect.sequenceEqual adapters.Names [ "rl" ] "disposing the trainer removes its reference snapshot"
                stats.Kl
            let fromStart = klBeforeFirstUpdate KlReference.Start
            let fromBase = klBeforeFirstUpdate KlReference.Base
            Expect.floatClose Accuracy.high fromStart 0.0 "against the starting adapter the KL starts at 0"
            Expect.isGreaterThan fromBase 1e-3 $"against the base the KL of a trained adapter is not 0 ({fromBase:G3})"
        }

        test "a 2-step run writes per-perspective rewards; interrupted after step 1 and resumed it gives the same metrics" {
            use full = new TempDir()
            use cut = new TempDir()
            let estimator = Estimator.parse "gba"
            let runFull =
                use s = new Setup(full.Path, runOptions full.Path, estimator)
                s.Trainer.Run()
            Expect.isTrue runFull.Completed "completed"
            let lines = MetricsWriter.Read(Path.Combine(full.Path, "metrics.jsonl"))
            Expect.equal lines.Count 2 "one line per step"
            for p in GuidelineSpec.perspectiveNames (DefaultSpec.load ()) do
                for line in lines do
                    let r = line[$"reward_{p}"].GetValue<float>()
                    Expect.isTrue (r >= 0.0 && r <= 1.0) $"reward_{p} in [0, 1]"
            for key in [ "reward_mean"; "accuracy"; "format_rate"; "advantage_mean"; "advantage_std"; "kl"; "clip_fraction"
                         "entropy"; "response_length"; "loss"; "grad_norm"; "lr"; "generation_s"; "learning_s"; "rollout_tokens_per_s" ] do
                Expect.isTrue (lines[1].ContainsKey key) $"metrics has {key}"
            Expect.isGreaterThan ((lines[1]).["response_length"].GetValue<float>()) 0.0 "something was generated"
            Expect.isTrue (TrainingCheckpoint.Exists(full.File "checkpoint")) "checkpoint written"

            use source = new CancellationTokenSource()
            let runCut =
                use s = new Setup(cut.Path, runOptions cut.Path, estimator, CancelAfter(1L, source) :> ProgressReporter)
                s.Trainer.Run(false, source.Token)
            Expect.equal (runCut.LastStep, runCut.Completed) (1L, false) "stopped after step 1"
            let runResumed =
                use s = new Setup(cut.Path, runOptions cut.Path, estimator)
                s.Trainer.Run(true)
            Expect.equal (runResumed.FirstStep, runResumed.LastStep) (2L, 2L) "resumed at step 2"
            Expect.sequenceEqual (deterministicFields (Path.Combine(cut.Path, "metrics.jsonl")))
                                 (deterministicFields (Path.Combine(full.Path, "metrics.jsonl"))) "same metrics (timings aside)"
            Expect.throwsT<TrainingException> (fun () ->
                use s = new Setup(cut.Path, runOptionsWith 2 cut.Path, estimator)
                s.Trainer.Run(true) |> ignore) "resuming with another group size is refused"
        }
    ]
