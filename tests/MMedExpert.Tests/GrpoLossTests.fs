module MMedExpert.Tests.GrpoLossTests

open Expecto
open TorchSharp
open MMedExpert.Core.Training.Grpo

let private t (rows: float32[][]) = torch.tensor(array2D rows)
let private opts = GrpoLossOptions(Beta = 0.0, Aggregation = LossAggregation.TokenMean)

[<Tests>]
let tests =
    testList "GrpoLoss" [
        test "on-policy (ratio 1), β = 0: loss = −mean advantage over tokens, gradient −A/N per token" {
            let lp = (t [| [| -1.0f; -2.0f; 0.0f |]; [| -0.5f; -0.5f; -0.5f |] |]).requires_grad_(true)
            let mask = t [| [| 1.0f; 1.0f; 0.0f |]; [| 1.0f; 1.0f; 1.0f |] |]
            let adv = torch.tensor([| 1.0f; -2.0f |])
            let r = GrpoLoss.Compute(lp, lp.detach(), null, adv, mask, opts)
            // tokens: 2 with A=1, 3 with A=-2 → −(2·1 + 3·(−2))/5 = 0.8
            Expect.floatClose Accuracy.high (float (r.Loss.item<float32>())) 0.8 "loss"
            r.Loss.backward()
            let g = lp.grad.data<float32>().ToArray()
            Expect.sequenceEqual (g |> Array.map (fun x -> System.Math.Round(float x, 5))) [| -0.2; -0.2; 0.0; 0.4; 0.4; 0.4 |] "gradient"
            Expect.equal r.ClipFraction 0.0 "nothing clipped"
        }

        test "a ratio above 1+ε_high with a positive advantage is clipped: no gradient" {
            let lp = (t [| [| 0.0f |] |]).requires_grad_(true)
            let old = t [| [| -1.0f |] |] // ratio e ≈ 2.72 > 1.28
            let r = GrpoLoss.Compute(lp, old, null, torch.tensor([| 1.0f |]), t [| [| 1.0f |] |], opts)
            r.Loss.backward()
            Expect.equal (lp.grad.item<float32>()) 0.0f "zero gradient"
            Expect.equal r.ClipFraction 1.0 "clipped"
            Expect.floatClose Accuracy.high (float (r.Loss.item<float32>())) -1.28 "loss uses the clipped ratio"
        }

        test "KL estimators: zero when the policies agree; k3 ≥ 0; k1 = logπ − logπ_ref" {
            let lp = t [| [| -1.0f; -2.0f |] |]
            let rf = t [| [| -1.5f; -1.0f |] |]
            for e in [ KlEstimator.K1; KlEstimator.K2; KlEstimator.K3 ] do
                Expect.equal ((GrpoLoss.Kl(lp, lp, e)).abs().sum().item<float32>()) 0.0f $"{e} zero"
            Expect.isTrue ((GrpoLoss.Kl(lp, rf, KlEstimator.K3)).min().item<float32>() >= 0.0f) "k3 non-negative"
            Expect.sequenceEqual ((GrpoLoss.Kl(lp, rf, KlEstimator.K1)).data<float32>().ToArray()) [| 0.5f; -1.0f |] "k1"
        }

        test "aggregation modes on a hand-computed example" {
            let loss = t [| [| 1.0f; 3.0f; 9.0f |]; [| 2.0f; 0.0f; 0.0f |] |]
            let mask = t [| [| 1.0f; 1.0f; 0.0f |]; [| 1.0f; 0.0f; 0.0f |] |]
            let agg a = float ((GrpoLoss.Aggregate(loss, mask, GrpoLossOptions(Beta = 0.0, Aggregation = a, MaxCompletionLength = 4))).item<float32>())
            Expect.floatClose Accuracy.high (agg LossAggregation.TokenMean) 2.0 "token mean: 6/3"
            Expect.floatClose Accuracy.high (agg LossAggregation.SequenceMeanTokenMean) 2.0 "seq mean of token means: (2 + 2)/2"
            Expect.floatClose Accuracy.high (agg LossAggregation.SequenceMeanTokenSum) 3.0 "seq mean of sums: (4 + 2)/2"
            Expect.floatClose Accuracy.high (agg LossAggregation.ConstantNormalizer) 0.75 "6 / (2·4)"
        }

        test "β > 0 without reference log-probs is an error" {
            let lp = t [| [| -1.0f |] |]
            Expect.throwsT<System.ArgumentException> (fun () ->
                GrpoLoss.Compute(lp, lp, null, torch.tensor([| 1.0f |]), t [| [| 1.0f |] |], GrpoLossOptions(Beta = 0.1)) |> ignore) "error"
        }
    ]
