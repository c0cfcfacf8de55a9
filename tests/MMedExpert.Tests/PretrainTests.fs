/// The pretrained embedded base: its curriculum teaches perception and format but never a diagnosis, `mmx pretrain`
/// resumes to the same model as an uninterrupted run, the shipped base matches its provenance and answers in format,
/// and the pipeline's --base rejects a bad path.
module MMedExpert.Tests.PretrainTests

open System
open System.IO
open System.Threading
open Expecto
open MMedExpert.Cli.Pretraining
open MMedExpert.Core.Model
open MMedExpert.Core.Model.Generation
open MMedExpert.Core.Training
open MMedExpert.Core.Tokenization
open MMedExpert.Core.Vision
open MMedExpert.Data.MedSynth
open MMedExpert.Data.Schema
open MMedExpert.Tests.TestKit

/// A small MedSynth set (generated once per test process).
let private medSynth =
    lazy
        (let dir = Path.Combine(Path.GetTempPath(), $"mmx-test-medsynth-{Environment.ProcessId}")
         if not (Directory.Exists dir) then MedSynthGenerator.Write(dir, MedSynthOptions(N = 64, Seed = 3UL)) |> ignore
         dir, [ for split in [ "sft"; "rl"; "val"; "test" ] do yield! (MedItemLoader.Load(Path.Combine(dir, split + ".jsonl"))).Items ])

let private settingsAt minFormat (dir: TempDir) work out steps freezeVision =
    PretrainSettings(OutDir = dir.File out, WorkDir = dir.File work, Preset = "tiny", Items = 64, DataSeed = 5UL, Seed = 5L,
                     TokenizerMerges = 300, VisionSteps = 2 (* below the stop step: CancelAfter stops pretraining, not the warm-up *), VisionBatchSize = 4, Steps = steps, BatchSize = 4, CheckpointEvery = 100,
                     ReadoutItems = 4, FreezeVision = freezeVision, Command = "test", MinFormatRate = minFormat)

/// A few tiny steps write no answer format, so these runs accept any.
let private settingsWith dir work out steps freezeVision = settingsAt 0.0 dir work out steps freezeVision

let private settings dir work out = settingsWith dir work out 6 false

let private shipped = ShippedBase.DefaultDir

[<Tests>]
let tests =
    // Sequenced: pretraining seeds and draws from torch's process-wide generator (model init, warm-up probe), so a test
    // running beside it that draws too would make the two runs differ (seen on CI).
    testSequenced <| testList "Pretrain" [
        test "the curriculum's targets name findings and the format, never a diagnosis" {
            let dir, items = medSynth.Value
            for i, item in List.indexed items do
                let scenario = Scenario.For item.Specialty
                let samples = PerceptionCurriculum.Samples(item, dir, 1UL, i) |> Seq.toList
                Expect.equal samples.Length 2 "two samples per item"
                for s in samples do
                    for dx in Seq.append scenario.Diagnoses scenario.Distractors do
                        Expect.isFalse (s.AssistantText.Contains dx) $"{item.Id}: the target names no diagnosis ({dx})"
                Expect.isTrue samples[0].Open "the findings sample is open (the turn's end is not trained)"
                Expect.stringStarts (MedItemSamples.CompactTrace item) samples[0].AssistantText "it is the compact trace's first step"
                let question = PerceptionCurriculum.FindingQuestionItem(item, SeededRandom.For(1UL, 11UL, uint64 i))
                let findings = MedItemSamples.CompactFindings item
                let trueOptions = question.Options.Values |> Seq.filter (fun o -> Seq.contains o findings) |> Seq.toList
                Expect.equal trueOptions [ question.AnswerText ] $"{item.Id}: exactly one option is a finding the item has, and it is the answer"
                Expect.isFalse (question.Question.Contains "diagnosis") "the finding question asks no diagnosis"
                Expect.isTrue (ReasoningFormat.IsStrict samples[1].AssistantText) "the finding question's answer is in the strict format"
        }

        test "an open sample trains its content but not the end of the turn" {
            let dir, items = medSynth.Value
            let tokenizer = Qwen2Tokenizer(BpeTrainer.Train([ for i in items -> i.Question + MedItemSamples.CompactTrace i ], BpeTrainerOptions(Merges = 200), "t"))
            let encoder = VisionChatEncoder(tokenizer, ImageProcessor())
            let prompt = MedItemSamples.Prompt(items[0], dir)
            let closed = VisionChatSample(prompt.ImagePaths, prompt.UserText, PerceptionCurriculum.FindingsStep items[0])
            let positions (s: VisionChatSample) =
                use batch = encoder.Training [ s ]
                let mask = batch.LossMask.data<bool>().ToArray()
                let ids = batch.InputIds.data<int64>().ToArray()
                [ for j in 0 .. mask.Length - 1 do if mask[j] then yield ids[j + 1] ]
            let full = positions closed
            let opened = positions (VisionChatSample(prompt.ImagePaths, prompt.UserText, PerceptionCurriculum.FindingsStep items[0], Open = true))
            Expect.equal opened.Length (full.Length - 1) "one loss position fewer"
            Expect.equal (List.last full) (int64 tokenizer.ImEnd) "the closed sample's last target is <|im_end|>"
            Expect.equal opened (List.take opened.Length full) "the open sample trains the same content tokens"
        }

        test "the finding readout scores the reference traces 100 % and a swapped finding as wrong" {
            let _, items = medSynth.Value
            let readout = FindingReadout()
            for item in items do readout.Add(item, MedItemSamples.CompactTrace item)
            for label in 0 .. FindingReadout.Count - 1 do
                Expect.isGreaterThan (readout.Seen label) 0 $"{FindingReadout.Name label} seen"
                Expect.equal (readout.Accuracy()[label]) 1.0 $"{FindingReadout.Name label} read right in the reference"
            let item = items[0]
            let findings = MedItemSamples.CompactFindings item |> Seq.toArray
            let scenario = Scenario.For item.Specialty
            findings[1] <- (if findings[1] = scenario.Second.Image.WhenTrue then scenario.Second.Image.WhenFalse else scenario.Second.Image.WhenTrue)
            let scored = FindingReadout.Score(item, "<think>Key findings: " + String.Join("; ", findings) + ".") |> Seq.map (fun struct (_, right) -> right) |> Seq.toList
            Expect.equal scored [ true; false; true; true ] "only the swapped image finding is wrong"
            Expect.isTrue (FindingReadout.Score(item, "no trace") |> Seq.forall (fun struct (_, right) -> not right)) "an unparsed output reads nothing"
        }

        test "a reduced mmx pretrain stopped mid-run resumes to the same model as an uninterrupted run" {
            use dir = new TempDir()
            let straight = BasePretraining.Run(settings dir "work-a" "out-a", ProgressReporter.None, ignore)
            Expect.isNotNull (box straight) "the uninterrupted run finishes"
            use cts = new CancellationTokenSource()
            let stopped = BasePretraining.Run(settings dir "work-b" "out-b", MMedExpert.Tests.TinyVlm.CancelAfter(3L, cts), ignore, cts.Token)
            Expect.isNull (box stopped) "the stopped run reports that it stopped"
            Expect.isFalse (Directory.Exists(dir.File "out-b")) "and writes no model"
            let state = TrainingCheckpoint.ReadState(Path.Combine(dir.File "work-b", "pretrain", "checkpoint"))
            Expect.equal state.Step 3L "its checkpoint holds step 3"
            let resumed = BasePretraining.Run(settings dir "work-b" "out-b", ProgressReporter.None, ignore)
            Expect.equal resumed.Sha256 straight.Sha256 "the resumed model is the uninterrupted one, bit for bit"
            Expect.equal (ShippedBase.Verify(dir.File "out-b")).Sha256 resumed.Sha256 "its provenance names its SHA-256"
            Expect.equal resumed.FindingAccuracy.Count 16 "the readout covers the 16 findings"
            use model = Qwen25VL.Load(dir.File "out-b")
            Expect.equal (model.parameters() |> Seq.head).dtype TorchSharp.torch.ScalarType.Float32 "loads (converted from bf16) as fp32"
        }

        test "--freeze-vision keeps the warmed tower as the warm-up left it while the language model learns; the default trains both" {
            use dir = new TempDir()
            let run work steps freeze =
                let p = BasePretraining.Run(settingsWith dir work (work + "-out") steps freeze, ProgressReporter.None, ignore)
                Expect.isNotNull (box p) $"{work} finishes"
                Qwen25VL.Load(dir.File (work + "-out"))
            use six = run "frozen-6" 6 true
            use three = run "frozen-3" 3 true
            use trained = run "trained" 6 false
            let named (m: Qwen25VLForConditionalGeneration) prefix =
                m.named_parameters() |> Seq.filter (fun struct (n, _) -> n.StartsWith(prefix: string)) |> Seq.map (fun struct (n, t) -> n, (t :> TorchSharp.torch.Tensor)) |> Seq.toList
            let same a b prefix = List.forall2 (fun (_, x: TorchSharp.torch.Tensor) (_, y: TorchSharp.torch.Tensor) -> x.equal(y).all().item<bool>()) (named a prefix) (named b prefix)
            Expect.isTrue (same six three "visual.") "the tower after 6 steps is the tower after 3: the warm-up's, untouched"
            Expect.isFalse (same six three "model.") "while the language model moved"
            Expect.isFalse (same six trained "visual.") "the default (how the shipped base was made) moves the tower"
            Expect.equal (ShippedBase.ReadProvenance(dir.File "frozen-6-out")).FreezeVision (Nullable true) "the provenance records it"
        }

        test "a base below --min-format is written to WORK/rejected, not to --out, and the run fails naming the figure" {
            use dir = new TempDir()
            let p = settingsAt 1.01 dir "work" "out" 3 true
            let e =
                try BasePretraining.Run(p, ProgressReporter.None, ignore) |> ignore; failtest "a rejected base throws"
                with :? MMedExpert.Core.MmxException as e -> e
            Expect.stringContains e.Message "held-out diagnosis answers" "the message says what was measured"
            Expect.stringContains e.Message "101 %" "and the bar"
            Expect.isFalse (Directory.Exists(dir.File "out")) "nothing is written to --out"
            let rejected = Path.Combine(dir.File "work", "rejected")
            Expect.equal (ShippedBase.Verify rejected).Steps 3 "the rejected model and its provenance are kept for inspection"
        }

        test "--min-format outside [0, 1] is refused before any work, naming the value" {
            use dir = new TempDir()
            let code, _, err = runMmx [ "pretrain"; "--min-format"; "90"; "--work"; dir.File "work"; "--out"; dir.File "out" ]
            Expect.equal code 2 "a usage error"
            Expect.stringContains err "--min-format 90" "naming the option and the value"
            Expect.isFalse (Directory.Exists(dir.File "work")) "nothing was started"
        }

        test "a corrupted base fails the SHA-256 check, naming the file" {
            use dir = new TempDir()
            let out = dir.File "base"
            Directory.CreateDirectory out |> ignore
            File.WriteAllBytes(Path.Combine(out, ShippedBase.WeightsFile), [| 1uy; 2uy; 3uy |])
            ShippedBase.WriteProvenance(out, ShippedBaseProvenance(Sha256 = String('0', 64)))
            let e =
                try ShippedBase.Verify out |> ignore; failtest "a mismatch throws"
                with :? MMedExpert.Core.MmxException as e -> e
            Expect.stringContains e.Message (Path.Combine(out, ShippedBase.WeightsFile)) "naming the weights file"
            Expect.stringContains e.Message "does not match" "and saying why"
        }

        test "the shipped base matches the SHA-256 of its provenance" {
            let provenance = ShippedBase.Verify shipped
            Expect.equal provenance.Sha256.Length 64 "a SHA-256"
            Expect.isGreaterThan provenance.Steps 0 "the provenance records the steps"
            Expect.isLessThanOrEqual (FileInfo(Path.Combine(shipped, ShippedBase.WeightsFile))).Length (25L <<< 20) "at most 25 MB"
        }

        test "the shipped base answers a MedSynth item in the answer format" {
            let dir, items = medSynth.Value
            use model = Qwen25VL.Load shipped
            let tokenizer = Qwen2Tokenizer.FromFile(Path.Combine(shipped, "tokenizer.json"))
            let encoder = VisionChatEncoder(tokenizer, ImageProcessor.Load(Path.Combine(shipped, "preprocessor_config.json")))
            let item = items |> List.find (fun i -> i.Split = "test")
            let answer = MMedExpert.Data.Eval.ModelAnswers.Greedy(Qwen25VLGenerator(model, (fun ids -> tokenizer.Decode(ids, skipSpecial = true))), encoder, 64)
            let output = (answer.Invoke [| MMedExpert.Data.Benchmarks.MedSynthBench.ToEvalItem(item, dir) |])[0]
            Expect.isTrue (ReasoningFormat.IsStrict output) $"<think>…</think><answer>…</answer>, got: {output}"
            Expect.stringStarts output "<think>Key findings: " "the trace starts with the findings"
        }

        test "pipeline --base with a missing folder is a one-line error naming it" {
            let code, _, err = runMmx [ "pipeline"; "--base"; "/nonexistent/base-model"; "--runs"; Path.GetTempPath() ]
            Expect.equal code 2 "exit code 2"
            Expect.stringContains err "/nonexistent/base-model" "names the path"
            Expect.stringContains err "no such folder" "and the problem"
        }
    ]
