module MMedExpert.Tests.TrainingKitTests

open System
open System.IO
open System.Text.Json.Nodes
open Expecto
open TorchSharp
open TorchSharp.Modules
open MMedExpert.Core.Lora
open MMedExpert.Core.Training
open MMedExpert.Tests.TestKit

/// Token sequences of lengths 6..13 (deterministic), the toy corpus of the training tests.
let private corpus =
    [| for i in 0..15 ->
        let len = 6 + (i * 5) % 8
        [| for j in 0..len - 1 -> int64 ((i * 7 + j * 3 + i * j) % 64) |] |]

let private bucketing = LengthBucketing([| for s in corpus -> s.Length |], batchSize = 2, chunkBatches = 2, seed = 3L)

/// A batch as a tensor: the samples cut to the shortest one (the bucketing keeps lengths close).
let private batchTensor (indices: int[]) =
    let len = indices |> Array.map (fun i -> corpus[i].Length) |> Array.min
    torch.tensor(Array2D.init indices.Length len (fun r c -> corpus[indices[r]][c]))

type private RunResult = { Run: TrainingRun; Final: (string * torch.Tensor) list }

/// Trains a PiSSA adapter (dropout on, accumulation 2, clipping, warmup) on the toy model; optionally crashes at a step.
let private trainToy (outDir: string) (crashAtStep: int option) (resume: bool) (lr: float) =
    use m = new ToyCausalLm(ToyCausalLmConfig(), 1L)
    m.train ()
    use adapters = new LoraAdapters(m)
    adapters.Add("e", LoraConfig(R = 4, Alpha = 8.0, Dropout = 0.1, Init = LoraInit.PiSSA), 5L)
    adapters.SetActive "e"
    let ps = adapters.TrainableParameters "e"
    let options =
        TrainerOptions(LearningRate = lr, WarmupSteps = 2, TotalSteps = 10, Accumulation = 2, ClipNorm = 0.5,
                       WeightDecay = 0.01, CheckpointEvery = 3, Seed = 11L, OutputDir = outDir)
    let batchAt (i: int64) =
        match crashAtStep with
        | Some s when i / 2L + 1L = int64 s -> raise (InvalidOperationException "simulated crash")
        | _ -> bucketing.BatchAt i
    use trainer =
        new Trainer<int[]>(options, ps, Func<_, _> batchAt, Func<_, _>(fun b -> use t = batchTensor b in m.Loss t),
                           state = adapters.State "e", tokensOf = Func<_, _>(fun b -> int64 (b.Length * 6)))
    let run = trainer.Run(resume)
    { Run = run; Final = [ for struct (n, t) in adapters.State "e" -> n, t.detach().clone() ] }

let private metricsLosses (path: string) =
    [ for line in MetricsWriter.Read path -> line["step"].GetValue<int64>(), line["loss"].GetValue<float>() ]

[<Tests>]
let tests =
    testList "TrainingKit" [
        test "cosine schedule with warmup at hand-computed steps" {
            let s = CosineSchedule(1e-3, 10, 110)
            let close a b msg = Expect.floatClose Accuracy.veryHigh (s.At a) b msg
            close 1L 1e-4 "warmup 1/10"
            close 5L 5e-4 "warmup 5/10"
            close 10L 1e-3 "peak at the end of warmup"
            close 35L (1e-3 * 0.5 * (1.0 + 0.7071067811865476)) "a quarter of the decay: (1 + cos π/4)/2"
            close 60L 5e-4 "half way"
            close 110L 0.0 "zero at the end"
            let withMin = CosineSchedule(1e-3, 0, 100, 1e-4)
            Expect.floatClose Accuracy.veryHigh (withMin.At 1L) (1e-4 + 0.9e-3 * 0.5 * (1.0 + cos (Math.PI / 100.0))) "no warmup: decay from step 1"
            Expect.floatClose Accuracy.veryHigh (withMin.At 50L) 5.5e-4 "min lr + half the range"
            Expect.floatClose Accuracy.veryHigh (withMin.At 100L) 1e-4 "ends at the min lr"
        }

        test "global-norm clipping returns the norm before clipping and scales to the limit" {
            use p1 = new Parameter(torch.zeros(2L))
            use p2 = new Parameter(torch.zeros(1L))
            use p3 = new Parameter(torch.zeros(1L))
            (p1 * torch.tensor([| 3.0f; 4.0f |])).sum().add(p2 * 12.0f).sum().backward()
            let ps: torch.Tensor list = [ p1; p2; p3 ] // p3 has no gradient: skipped
            let norm = GradientClipping.ClipGlobalNorm(ps, 100.0)
            Expect.floatClose Accuracy.veryHigh norm 13.0 "sqrt(9 + 16 + 144)"
            Expect.isTrue (sameTensor p1.grad (torch.tensor([| 3.0f; 4.0f |]))) "no clipping under the limit"
            let before = GradientClipping.ClipGlobalNorm(ps, 6.5)
            Expect.floatClose Accuracy.veryHigh before 13.0 "norm before clipping"
            let after = GradientClipping.ClipGlobalNorm(ps, 0.0)
            Expect.floatClose Accuracy.medium after 6.5 "clipped to the limit"
            Expect.floatClose Accuracy.medium (p2.grad.item<float32> () |> float) 6.0 "each gradient scaled by 6.5/13"
        }

        test "gradient accumulation gives the gradient of the mean loss" {
            use w = new Parameter(torch.tensor([| 0.5f; -1.0f; 2.0f |]))
            let xs = [| torch.tensor([| 1.0f; 2.0f; 3.0f |]); torch.tensor([| -1.0f; 0.5f; 4.0f |]) |]
            let lossOf (x: torch.Tensor) = (w * x).sum().square()
            let mean = GradientAccumulation.Accumulate(2, fun m -> lossOf xs[m])
            let accumulated = w.grad.clone()
            w.grad.zero_() |> ignore
            let direct = (lossOf xs[0] + lossOf xs[1]) / 2.0f
            direct.backward()
            Expect.isTrue (accumulated.allclose(w.grad, rtol = 1e-6, atol = 1e-6)) "same gradient"
            Expect.floatClose Accuracy.high mean (direct.item<float32> () |> float) "mean loss"
        }

        test "length bucketing: every sample once per epoch, sorted within chunks, reproducible from the seed" {
            let lengths = [| for i in 0..22 -> 3 + (i * 7) % 11 |]
            let b = LengthBucketing(lengths, batchSize = 3, chunkBatches = 2, seed = 5L)
            Expect.equal b.BatchesPerEpoch 8 "ceil(23 / 3)"
            let e0 = b.Epoch 0
            Expect.sequenceEqual (e0 |> Seq.concat |> Seq.sort) [ 0..22 ] "each sample exactly once"
            for batch in e0 do
                let ls = batch |> Array.map (fun i -> lengths[i])
                Expect.sequenceEqual ls (Array.sortDescending ls) "longest first inside a batch"
            let spread (batches: seq<int[]>) = batches |> Seq.sumBy (fun batch -> let ls = batch |> Array.map (fun i -> lengths[i]) in Array.max ls - Array.min ls)
            let random = [ for k in 0..7 -> [| for j in 0..2 do if k * 3 + j < 23 then k * 3 + j |] ]
            Expect.isLessThan (spread e0) (spread random) "less padding than consecutive batches"
            let again = LengthBucketing(lengths, batchSize = 3, chunkBatches = 2, seed = 5L)
            Expect.sequenceEqual [ for i in 0L..15L -> again.BatchAt i |> List.ofArray ] [ for i in 0L..15L -> b.BatchAt i |> List.ofArray ] "same seed, same batches"
            let asLists (bs: seq<int[]>) = bs |> Seq.map List.ofArray |> List.ofSeq
            Expect.notEqual (asLists (b.Epoch 1)) (asLists e0) "epochs differ"
            let other = LengthBucketing(lengths, batchSize = 3, chunkBatches = 2, seed = 6L)
            Expect.notEqual (asLists (other.Epoch 0)) (asLists e0) "seeds differ"
            let dropped = LengthBucketing(lengths, batchSize = 3, chunkBatches = 2, seed = 5L, dropLast = true)
            Expect.isTrue (dropped.Epoch 0 |> Seq.forall (fun x -> x.Length = 3)) "dropLast: full batches only"
        }

        test "metrics writer: JSON lines, resume drops lines after the step and a torn last line" {
            use dir = new TempDir()
            let path = dir.File "metrics.jsonl"
            do
                use w = MetricsWriter.Create path
                for s in 1L..5L do w.Write(s, 1.0 / float s, 1e-3, 0.5, 100.0, readOnlyDict [ "kl", box 0.25 ])
            File.AppendAllText(path, "{\"step\": 6, \"lo")
            do
                use w = MetricsWriter.Resume(path, 3L)
                w.Write(4L, 9.0, 1e-3, 0.1, 50.0)
            let lines = MetricsWriter.Read path
            Expect.sequenceEqual [ for l in lines -> l["step"].GetValue<int64>() ] [ 1L; 2L; 3L; 4L ] "steps"
            let first, appended = lines[0], lines[3]
            Expect.equal (appended["loss"].GetValue<float>()) 9.0 "the appended line"
            Expect.equal (first["kl"].GetValue<float>()) 0.25 "extra fields"
            for key in [ "step"; "loss"; "lr"; "grad_norm"; "tokens_per_s" ] do Expect.isTrue (first.ContainsKey key) key
            File.AppendAllText(path, "not json\n{\"step\":5}\n")
            let e = Expect.throwsT<MMedExpert.Core.Training.TrainingException> (fun () -> (MetricsWriter.Resume(path, 5L)).Dispose())
            ()
        }

        test "plain progress lines every N percent with rate and ETA" {
            use out = new StringWriter()
            let p = PlainProgress(out, everyPercent = 25.0, everySeconds = 1e9)
            p.Run("train", 8L, 0L, fun report -> for s in 1L..8L do report.Invoke(s, (if s = 8L then "loss 0.5" else null)))
            let lines = out.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries)
            Expect.equal lines.Length 4 $"25%% marks: {out}"
            Expect.stringStarts lines[1] "train: 4/8 (50%)" "position and percent"
            Expect.stringContains lines[1] "ETA" "ETA"
            Expect.stringContains lines[3] "loss 0.5" "status"
        }

        test "resume after an interruption gives the identical loss curve" {
            use dirA = new TempDir()
            use dirB = new TempDir()
            let full = trainToy dirA.Path None false 5e-3
            Expect.isTrue full.Run.Completed "uninterrupted run completes"
            Expect.equal full.Run.Losses.Count 10 "10 steps"
            Expect.isLessThan full.Run.Losses[9] full.Run.Losses[0] "the loss goes down"
            try trainToy dirB.Path (Some 8) false 5e-3 |> ignore; failwith "expected the simulated crash"
            with :? InvalidOperationException as e when e.Message = "simulated crash" -> ()
            Expect.equal (metricsLosses (Path.Combine(dirB.Path, "metrics.jsonl")) |> List.length) 7 "metrics up to the crash"
            let refused = Expect.throwsT<TrainingException> (fun () -> trainToy dirB.Path None true 1e-3 |> ignore)
            let resumed = trainToy dirB.Path None true 5e-3
            Expect.equal resumed.Run.FirstStep 7L "continues after the step-6 checkpoint"
            Expect.isTrue resumed.Run.Completed "resumed run completes"
            let a = metricsLosses (Path.Combine(dirA.Path, "metrics.jsonl"))
            let b = metricsLosses (Path.Combine(dirB.Path, "metrics.jsonl"))
            Expect.sequenceEqual b a "identical (step, loss) curve, bit for bit"
            Expect.sequenceEqual (List.ofSeq resumed.Run.Losses) (List.ofSeq full.Run.Losses |> List.skip 6) "same losses after resuming"
            for (n, t), (n2, t2) in List.zip full.Final resumed.Final do
                Expect.equal n2 n "same state names"
                Expect.isTrue (sameTensor t t2) $"{n}: identical final adapter"
            let ckpt = Path.Combine(dirB.Path, "checkpoint")
            for f in [ TrainingCheckpoint.StateFile; TrainingCheckpoint.TensorsFile; TrainingCheckpoint.OptimizerFile ] do
                Expect.isTrue (File.Exists(Path.Combine(ckpt, f))) f
            Expect.equal (TrainingCheckpoint.ReadState ckpt).Step 10L "final checkpoint"
        }

        test "a checkpoint refuses state that does not match" {
            use dir = new TempDir()
            use p = new Parameter(torch.ones(3L))
            use opt = torch.optim.AdamW([ p ], 0.1)
            let state = TrainingState(2L, 2L, 2L, 1L, JsonObject())
            TrainingCheckpoint.Save(dir.Path, state, [| struct ("w", p :> torch.Tensor) |], opt)
            use q = new Parameter(torch.ones(4L))
            let e = Expect.throwsT<TrainingException> (fun () -> TrainingCheckpoint.Load(dir.Path, [| struct ("w", q :> torch.Tensor) |], opt) |> ignore)
            let e2 = Expect.throwsT<TrainingException> (fun () -> TrainingCheckpoint.Load(dir.Path, [| struct ("v", p :> torch.Tensor) |], opt) |> ignore)
            p.detach().mul_((5.0f).ToScalar()) |> ignore
            let back = TrainingCheckpoint.Load(dir.Path, [| struct ("w", p :> torch.Tensor) |], opt)
            Expect.equal back.Step 2L "step"
            Expect.isTrue (sameTensor p (torch.ones(3L))) "tensor restored in place"
        }
    
        test "mmx bench lora --preset toy runs both modes and reports speed and memory" {
            let code, out, err = runMmx [ "bench"; "lora"; "--preset"; "toy"; "--in-process"; "--steps"; "1"; "--warmup"; "0"; "--batch"; "1"; "--seq"; "8"; "--json" ]
            Expect.equal code 0 $"exit code ({err})"
            let j = JsonNode.Parse(out).AsObject()
            let lora, full = j["lora"].AsObject(), j["full"].AsObject()
            for r in [ lora; full ] do
                for key in [ "tokens_per_s"; "peak_rss_bytes"; "train_extra_bytes"; "trainable_params" ] do
                    Expect.isTrue (r.ContainsKey key) key
                Expect.isGreaterThan (r["tokens_per_s"].GetValue<float>()) 0.0 "tokens/s"
            Expect.equal (full["trainable_params"].GetValue<int64>()) (full["total_params"].GetValue<int64>()) "full fine-tuning trains everything"
            Expect.isLessThan (j["lora_over_full_trainable_params"].GetValue<float>()) 0.1 "LoRA trains a small fraction"
            let code, _, err = runMmx [ "bench"; "lora"; "--preset"; "nope" ]
            Expect.equal code 2 "unknown preset is an input error"
            Expect.stringContains err "nope" "names the preset"
        }
    ]
