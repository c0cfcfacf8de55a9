module MMedExpert.Tests.SftTests

open System
open System.IO
open System.Threading
open Expecto
open TorchSharp
open TorchSharp.Modules
open MMedExpert.Core.Lora
open MMedExpert.Core.Model
open MMedExpert.Core.Training
open MMedExpert.Core.Training.Sft
open MMedExpert.Tests.TestKit
open MMedExpert.Tests.TinyVlm

let private lossesOf (path: string) =
    [ for line in MetricsWriter.Read path -> line["step"].GetValue<int64>(), line["loss"].GetValue<float>() ]

let private stateOf (adapters: LoraAdapters) name =
    [ for struct (n, t) in adapters.State name -> n, t.detach().clone() ]

/// One SFT run of a Gaussian-init LoRA expert (dropout on, accumulation 2) on the tiny model; returns the final adapter state.
let private sft (dir: string) (steps: int) (lr: float) (progress: ProgressReporter) (resume: bool) (cancel: CancellationToken) =
    let samples = sftSamples (Directory.CreateDirectory dir).FullName
    use m = model 3L
    use adapters = new LoraAdapters(m)
    adapters.Add("e", LoraConfig(R = 8, Alpha = 16.0, Dropout = 0.1, Init = LoraInit.Gaussian), 5L)
    adapters.SetActive "e"
    let options =
        TrainerOptions(LearningRate = lr, WarmupSteps = 2, TotalSteps = steps, Accumulation = 2, ClipNorm = 1.0,
                       CheckpointEvery = 3, Seed = 17L, OutputDir = Path.Combine(dir, "run"))
    let run = SftRunner.Train(m, encoder (), samples, adapters.TrainableParameters "e", options, 2, adapters.State "e",
                              progress, resume, cancel)
    run, stateOf adapters "e"

/// Logits of every sample (one batch, the image ones included) under the model as it is.
let private logitsOn (m: Qwen25VLForConditionalGeneration) (samples: VisionChatSample list) =
    use _ = torch.no_grad ()
    use batch = encoder().Training(samples)
    m.forward(batch.InputIds, batch.AttentionMask, batch.PixelValues, batch.ImageGridThw)

let private maxAbsDiff (a: torch.Tensor) (b: torch.Tensor) = float ((a - b).abs().max().item<float32>())

[<Tests>]
let tests =
    testList "Sft" [
        test "WithTokenizer binds the vocabulary and the special ids of a trained tokenizer" {
            let tok = tokenizer.Value
            let c = config ()
            Expect.equal c.VocabSize tok.VocabSize "vocab = tokenizer"
            Expect.isLessThan c.VocabSize 1000 "a small vocabulary"
            Expect.equal c.ImageTokenId (tok.TokenToId "<|image_pad|>").Value "image pad"
            Expect.equal c.VisionStartTokenId (tok.TokenToId "<|vision_start|>").Value "vision start"
            Expect.equal c.VisionEndTokenId (tok.TokenToId "<|vision_end|>").Value "vision end"
            Expect.equal c.EosTokenId (Nullable (tok.TokenToId "<|im_end|>").Value) "eos = im_end"
            Expect.equal c.PadTokenId (Nullable (tok.TokenToId "<|endoftext|>").Value) "pad = endoftext"
            Expect.equal c.BosTokenId (Nullable (tok.TokenToId "<|endoftext|>").Value) "bos = endoftext"
            let back = Qwen25VLConfig.Parse(c.ToJson(), "round trip")
            Expect.equal (back.VocabSize, back.ImageTokenId, back.EosTokenId, back.PadTokenId)
                         (c.VocabSize, c.ImageTokenId, c.EosTokenId, c.PadTokenId) "config.json keeps them"
        }

        test "assistant-only loss mask on a hand-checked sample with one image, right padding beside a text-only one" {
            use dir = new TempDir()
            let tok = tokenizer.Value
            let image = writePng (dir.File "x.png") 1
            let withImage = VisionChatSample([| image |], "Which finding?", "<think>ok</think><answer>B</answer>")
            let textOnly = VisionChatSample([||], "Why?", "<answer>A</answer>", "Be brief.")
            use batch = encoder().Training([ withImage; textOnly ])
            let id (s: string) = (tok.TokenToId s).Value
            let seg (s: string) = tok.Encode(s, false) |> List.ofArray
            let imStart, imEnd = id "<|im_start|>", id "<|im_end|>"
            // The chat format written out: added tokens split the text, so each piece is encoded on its own.
            let prefix =
                [ imStart ] @ seg "system\nYou are a helpful assistant." @ [ imEnd ] @ seg "\n"
                @ [ imStart ] @ seg "user\n" @ [ id "<|vision_start|>" ] @ List.replicate 4 (id "<|image_pad|>") @ [ id "<|vision_end|>" ]
                @ seg "Which finding?" @ [ imEnd ] @ seg "\n" @ [ imStart ] @ seg "assistant\n"
            let answer = [ id "<think>" ] @ seg "ok" @ [ id "</think>"; id "<answer>" ] @ seg "B" @ [ id "</answer>"; imEnd ]
            let expected = prefix @ answer @ seg "\n"
            let row0 = batch.InputIds[0L].data<int64>().ToArray() |> Array.map int
            Expect.sequenceEqual row0 (Array.ofList expected) "token ids of the image sample (the longer one: no padding)"
            // Position j is a loss position when token j+1 is an assistant token: from the last token of the
            // assistant header (predicting <think>) to </answer> (predicting <|im_end|>); never the final newline.
            let first, count = prefix.Length - 1, answer.Length
            let expectedMask = Array.init expected.Length (fun j -> j >= first && j < first + count)
            Expect.sequenceEqual (batch.LossMask[0L].data<bool>().ToArray()) expectedMask "loss positions of the image sample"
            Expect.isTrue (batch.AttentionMask[0L].data<int64>().ToArray() |> Array.forall ((=) 1L)) "no padding in the longest row"
            // The text-only sample: its own system prompt, right-padded with <|endoftext|>, no loss on padding.
            let prefix1 =
                [ imStart ] @ seg "system\nBe brief." @ [ imEnd ] @ seg "\n" @ [ imStart ] @ seg "user\nWhy?" @ [ imEnd ] @ seg "\n"
                @ [ imStart ] @ seg "assistant\n"
            let answer1 = [ id "<answer>" ] @ seg "A" @ [ id "</answer>"; imEnd ]
            let real1 = prefix1 @ answer1 @ seg "\n"
            let pad = expected.Length - real1.Length
            let row1 = batch.InputIds[1L].data<int64>().ToArray() |> Array.map int
            Expect.sequenceEqual row1 (Array.ofList (real1 @ List.replicate pad (id "<|endoftext|>"))) "token ids, right-padded"
            Expect.sequenceEqual (batch.AttentionMask[1L].data<int64>().ToArray())
                                 (Array.init expected.Length (fun j -> if j < real1.Length then 1L else 0L)) "attention mask"
            Expect.sequenceEqual (batch.LossMask[1L].data<bool>().ToArray())
                                 (Array.init expected.Length (fun j -> j >= prefix1.Length - 1 && j < prefix1.Length - 1 + answer1.Length)) "loss positions"
            Expect.equal batch.PixelValues.shape [| 16L; 1176L |] "one image: 4×4 patches of 1176 values"
            Expect.sequenceEqual (batch.ImageGridThw.data<int64>().ToArray()) [| 1L; 4L; 4L |] "grid"
            Expect.equal batch.Tokens (int64 (expected.Length + real1.Length)) "real tokens counted"
            // The loss is the cross-entropy at exactly those positions.
            use m = model 1L
            use loss = SftLoss.Compute(m, batch)
            use logits =
                use _ = torch.no_grad ()
                m.forward(batch.InputIds, batch.AttentionMask, batch.PixelValues, batch.ImageGridThw)
            let lp = logits.log_softmax(-1)
            let picked =
                [ for b, mask, row in [ 0, expectedMask, row0; 1, batch.LossMask[1L].data<bool>().ToArray(), row1 ] do
                    for j in 0 .. mask.Length - 1 do
                        if mask[j] then yield -(lp[int64 b, int64 j, int64 row[j + 1]].item<float32>() |> float) ]
            Expect.floatClose Accuracy.medium (float (loss.item<float32>())) (List.average picked) "mean NLL of the assistant tokens"
        }

        test "an interrupted and resumed SFT run gives the uninterrupted loss curve and adapter" {
            use full = new TempDir()
            use cut = new TempDir()
            let runFull, stateFull = sft full.Path 8 5e-3 ProgressReporter.None false CancellationToken.None
            Expect.isTrue runFull.Completed "uninterrupted run completes"
            use source = new CancellationTokenSource()
            let runCut, _ = sft cut.Path 8 5e-3 (CancelAfter(4L, source)) false source.Token
            Expect.equal (runCut.LastStep, runCut.Completed) (4L, false) "stopped after step 4 (checkpoint every 3: saved at 3 and on stop)"
            let runResumed, stateResumed = sft cut.Path 8 5e-3 ProgressReporter.None true CancellationToken.None
            Expect.equal runResumed.FirstStep 5L "resumed at step 5"
            let curveFull = lossesOf (Path.Combine(full.Path, "run", "metrics.jsonl"))
            let curveCut = lossesOf (Path.Combine(cut.Path, "run", "metrics.jsonl"))
            Expect.equal curveFull.Length 8 "8 metrics lines"
            Expect.sequenceEqual curveCut curveFull "identical loss curve, step by step"
            for (n, a), (_, b) in List.zip stateFull stateResumed do
                Expect.isTrue (sameTensor a b) $"adapter tensor {n} identical"
        }

        test "SFT learns: the loss falls over 20 steps on four samples (all parameters, and a LoRA expert)" {
            use dir = new TempDir()
            let headTail (losses: float[]) = Array.average losses[0..2], Array.average losses[17..19]
            // All parameters (how the pipeline pretrains its base).
            let fullHead, fullTail =
                use m = model 3L
                let options = TrainerOptions(LearningRate = 3e-3, WarmupSteps = 2, TotalSteps = 20, Accumulation = 2, Seed = 17L)
                let run = SftRunner.Train(m, encoder (), sftSamples dir.Path, Seq.toArray (m.parameters ()), options, 2)
                headTail (Array.ofSeq run.Losses)
            Expect.isLessThan fullTail (0.75 * fullHead) $"full: last 3 steps ({fullTail:F3}) well under the first 3 ({fullHead:F3})"
            // A LoRA expert on the random base: its frozen, tied N(0, 0.02²) embeddings bound how far the logits can move
            // (|logit| ≲ ‖h‖·‖e‖ ≈ 8 · 0.16), so the fall is smaller but must be clear.
            let run, _ = sft (dir.File "lora") 20 1e-2 ProgressReporter.None false CancellationToken.None
            let head, tail = headTail (Array.ofSeq run.Losses)
            Expect.isLessThan tail (head - 0.3) $"LoRA: last 3 steps ({tail:F3}) at least 0.3 nats under the first 3 ({head:F3})"
        }

        test "DSA: two experts (gaussian, pissa) from one saved base; their PEFT files reproduce the trained models" {
            use dir = new TempDir()
            let samples = sftSamples dir.Path
            let baseDir = dir.File "base"
            do
                use b = model 9L
                Qwen25VL.Save(b, baseDir)
            let options = TrainerOptions(LearningRate = 1e-2, TotalSteps = 4, Seed = 23L)
            let experts = [ "pediatrics", LoraInit.Gaussian; "oncology_surgery", LoraInit.PiSSA ]
            for specialty, init in experts do
                let lora = LoraConfig(R = 4, Alpha = 8.0, Dropout = 0.0, Init = init)
                let run = DsaRunner.TrainExpert(baseDir, encoder (), samples, specialty, lora, options, 2,
                                                dir.File $"experts/{specialty}/sft", dir.File $"work/{specialty}")
                Expect.isTrue run.Completed $"{specialty} trained"
            let probe = samples[0..1]
            use original = Qwen25VL.Load baseDir
            use baseLogits = logitsOn original probe
            let outputs =
                [ for specialty, init in experts do
                    // The trained model, rebuilt: fresh base, the same init, the checkpointed adapter tensors.
                    use trained = Qwen25VL.Load baseDir
                    use adapters = new LoraAdapters(trained)
                    adapters.Add(specialty, LoraConfig(R = 4, Alpha = 8.0, Dropout = 0.0, Init = init), 23L)
                    adapters.SetActive specialty
                    use optimizer = torch.optim.AdamW(adapters.TrainableParameters specialty, 1e-2)
                    TrainingCheckpoint.Load(dir.File $"work/{specialty}/checkpoint", adapters.State specialty, optimizer) |> ignore
                    use expected = logitsOn trained probe
                    // The saved expert on another fresh copy of the base.
                    use loaded = Qwen25VL.Load baseDir
                    use fromPeft = new LoraAdapters(loaded)
                    let config = fromPeft.Load(dir.File $"experts/{specialty}/sft", specialty)
                    fromPeft.SetActive specialty
                    use actual = logitsOn loaded probe
                    Expect.isLessThan (maxAbsDiff actual expected) 1e-4 $"{specialty}: PEFT adapter reproduces the trained model"
                    Expect.isGreaterThan (maxAbsDiff actual baseLogits) 1e-3 $"{specialty}: the expert differs from the base"
                    Expect.equal config.R (if init = LoraInit.PiSSA then 8 else 4) $"{specialty}: rank (PiSSA saved as its change from the base: 2r)"
                    yield actual.clone() ]
            Expect.isGreaterThan (maxAbsDiff outputs[0] outputs[1]) 1e-3 "the two experts differ"
            Expect.isTrue (File.Exists(dir.File "work/pediatrics/metrics.jsonl")) "metrics written"
        }
    ]
