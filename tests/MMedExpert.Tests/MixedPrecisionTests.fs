/// bf16 mixed precision: products in bf16, weights, gradients and optimizer state in fp32; training with it still
/// learns, and tracks the fp32 run.
module MMedExpert.Tests.MixedPrecisionTests

open Expecto
open TorchSharp
open MMedExpert.Core.Model
open MMedExpert.Core.Training
open MMedExpert.Core.Training.Sft
open MMedExpert.Tests.TestKit
open MMedExpert.Tests.TinyVlm

/// Losses of <paramref name="steps"/> AdamW steps on one fixed batch, from the same seeded model.
let private losses (compute: torch.ScalarType option) steps =
    use dir = new TempDir()
    use model = TinyVlm.model 3L
    MixedPrecision.Apply(model, Option.toNullable compute)
    model.train ()
    let parameters = Seq.toArray (model.parameters ())
    use optimizer = torch.optim.AdamW(parameters, 3e-3)
    use batch = (encoder ()).Training(sftSamples dir.Path |> List.toArray)
    [ for _ in 1 .. steps do
        use scope = torch.NewDisposeScope()
        optimizer.zero_grad ()
        let loss = SftLoss.Compute(model, batch)
        loss.backward ()
        for p in parameters do
            if not (isNull p.grad) then Expect.equal p.grad.dtype torch.ScalarType.Float32 "gradients reach the fp32 master weights"
        optimizer.step () |> ignore
        yield float (loss.item<float32> ()) ]

[<Tests>]
let tests =
    testList "MixedPrecision" [
        test "a linear layer computes in bf16 and returns the input's dtype" {
            use x = torch.randn(4L, 8L)
            use w = torch.randn(3L, 8L)
            use y = MixedPrecision.Linear(x, w, null, torch.ScalarType.BFloat16)
            use exact = torch.nn.functional.linear(x, w)
            use rounded = torch.nn.functional.linear(x.to_type(torch.ScalarType.BFloat16), w.to_type(torch.ScalarType.BFloat16)).to_type(torch.ScalarType.Float32)
            Expect.equal y.dtype torch.ScalarType.Float32 "fp32 out"
            Expect.isTrue (y.allclose(rounded, 0.0, 1e-6)) "the bf16 product"
            Expect.isFalse (y.allclose(exact, 0.0, 1e-6)) "which differs from the fp32 one (the cast is real)"
        }

        test "bf16 training steps decrease the loss on a fixed batch" {
            let l = losses (Some torch.ScalarType.BFloat16) 8
            Expect.isLessThan (List.last l) (0.8 * List.head l) $"loss falls by a fifth in 8 steps: {l}"
        }

        test "bf16 and fp32 losses agree within 2 % over 5 steps" {
            let bf16, fp32 = losses (Some torch.ScalarType.BFloat16) 5, losses None 5
            for a, b in List.zip bf16 fp32 do
                Expect.isLessThan (abs (a - b) / b) 0.02 $"bf16 {bf16} vs fp32 {fp32}"
        }

        test "unknown dtype names are refused" {
            Expect.throwsT<System.ArgumentException> (fun () -> MixedPrecision.Parse "fp8" |> ignore) "fp8 is not a compute dtype here"
        }
    ]
