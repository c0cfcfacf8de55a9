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
        test "one GRPO step on tiny raises the log-prob of the highest-advantage completion" {
            use dir = new TempDir()
            use s = new Setup(dir.Path, GrpoOptions(Loss = GrpoLossOptions(Beta = 0.04)), Estimator.parse "grpo")
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
            Expect.equal stats.ClipFraction 0.0 "on-policy: nothing clipped"
            Expect.isGreaterThan stats.GradNorm 0.0 "a gradient reached the adapter"
            Expect.floatClose Accuracy.high stats.Kl 0.0 "the policy equals the reference before the step (B = 0)"
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
