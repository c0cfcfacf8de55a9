/// Per-row adapter routing (LoraAdapters.SetRowAdapters): rows of one batch routed to different adapters (or none) give,
/// row for row, what each row alone gives with its adapter active; the active-set path is untouched; bad routing is refused.
module MMedExpert.Tests.LoraRoutingTests

open Expecto
open TorchSharp
open MMedExpert.Core.Lora
open MMedExpert.Core.Training
open MMedExpert.Tests.TestKit

let private toy () =
    let m = new ToyCausalLm(ToyCausalLmConfig(), 1L)
    m.eval ()
    m

// The LoRA tests' helpers: logits of the toy model, largest |difference|, and a LoraException's message.
let private logits = LoraTests.logits
let private maxDiff = LoraTests.maxDiff
let private errorOf f = LoraTests.errorOf f

/// A toy model with two non-trivial adapters: "a" (B = 0 init, then moved) and "b" (OLoRA: a frozen initial term too).
let private withTwoAdapters () =
    let m = toy ()
    let adapters = new LoraAdapters(m)
    adapters.Add("a", LoraConfig(R = 4, Alpha = 8.0, Dropout = 0.0, Init = LoraInit.Kaiming), 1L)
    adapters.Add("b", LoraConfig(R = 2, Alpha = 4.0, Dropout = 0.0, Init = LoraInit.OLoRA), 2L)
    use g = new torch.Generator(9UL)
    use _ = torch.no_grad ()
    for name in [ "a"; "b" ] do
        for w in adapters.Modules name do
            w.B.add_(torch.randn(w.B.shape, generator = g).mul_((0.05).ToScalar())) |> ignore
            w.A.add_(torch.randn(w.A.shape, generator = g).mul_((0.05).ToScalar())) |> ignore
    m, adapters

let private ids rows =
    use g = new torch.Generator(5UL)
    torch.randint(0L, 64L, [| rows; 7L |], generator = g)

/// Row r alone (batch 1) with exactly this adapter active (none: the base).
let private alone (m: ToyCausalLm) (adapters: LoraAdapters) (batch: torch.Tensor) (row: int64) (adapter: string option) =
    match adapter with
    | Some a -> adapters.SetActive a
    | None -> adapters.SetActive()
    logits m (batch.narrow(0, row, 1L))

[<Tests>]
let tests =
    testList "LoraRouting" [
        test "rows routed to a, b and none give, row for row, each row alone with its adapter active" {
            let m, adapters = withTwoAdapters ()
            use m = m
            use adapters = adapters
            use batch = ids 5L
            let routes = [ Some "a"; Some "b"; None; Some "b"; Some "a" ]
            adapters.SetActive "a"   // ignored while rows are routed
            adapters.SetRowAdapters [ for r in routes -> Option.toObj r ]
            Expect.equal (List.ofSeq adapters.RowAdapters) [ for r in routes -> Option.toObj r ] "the routing is readable"
            use routed = logits m batch
            adapters.ClearRowAdapters()
            Expect.isNull adapters.RowAdapters "cleared"
            routes |> List.iteri (fun i adapter ->
                use want = alone m adapters batch (int64 i) adapter
                use got = routed.narrow(0, int64 i, 1L)
                Expect.isLessThan (maxDiff got want) 1e-5 $"row {i} ({adapter}): its own model's output")
            // The rows really differ by adapter: the same tokens under a and b and none give three different outputs.
            adapters.SetRowAdapters [| "a"; "b"; null |]
            use same = torch.cat([| for _ in 0..2 -> batch.narrow(0, 0L, 1L) |], 0L)
            use three = logits m same
            Expect.isGreaterThan (maxDiff (three.narrow(0, 0L, 1L)) (three.narrow(0, 1L, 1L))) 1e-3 "a differs from b"
            Expect.isGreaterThan (maxDiff (three.narrow(0, 0L, 1L)) (three.narrow(0, 2L, 1L))) 1e-3 "a differs from the base"
            adapters.ClearRowAdapters()
        }

        test "one adapter on every row, or none on every row, is exactly the active-set computation; clearing restores it" {
            let m, adapters = withTwoAdapters ()
            use m = m
            use adapters = adapters
            use batch = ids 3L
            adapters.SetActive "b"
            use activeB = logits m batch
            adapters.SetActive()
            use baseOut = logits m batch
            adapters.SetRowAdapters [| "b"; "b"; "b" |]
            use routedB = logits m batch
            Expect.isTrue (sameTensor routedB activeB) "all rows on b = b active"
            adapters.SetRowAdapters [| null; null; null |]
            adapters.SetActive "a"
            use routedBase = logits m batch
            Expect.isTrue (sameTensor routedBase baseOut) "all rows on none = the base, whatever is active"
            adapters.ClearRowAdapters()
            adapters.SetActive "b"
            use again = logits m batch
            Expect.isTrue (sameTensor again activeB) "after clearing, the active set applies again, bit for bit"
        }

        test "gradients reach only the routed adapter's rows" {
            let m, adapters = withTwoAdapters ()
            use m = m
            use adapters = adapters
            use batch = ids 3L
            adapters.SetActive "a"
            let ps = adapters.TrainableParameters "a"
            adapters.SetRowAdapters [| "a"; null; "b" |]
            let grads () = [ for p in ps -> if isNull p.grad then 0.0f else p.grad.abs().sum().item<float32> () ]
            (m.forward batch).narrow(0, 1L, 2L).sum().backward()
            Expect.isTrue (grads () |> List.forall (fun g -> g = 0.0f)) "the rows not routed to a give a no gradient"
            (m.forward batch).narrow(0, 0L, 1L).sum().backward()
            Expect.isTrue (grads () |> List.exists (fun g -> g > 0.0f)) "its row does"
            adapters.ClearRowAdapters()
        }

        test "bad routing is refused with a LoraException naming the adapter, row or layer" {
            let m, adapters = withTwoAdapters ()
            use m = m
            use adapters = adapters
            use batch = ids 3L
            let unknown = errorOf (fun () -> adapters.SetRowAdapters [| "a"; "zzz"; null |])
            Expect.stringContains unknown "'zzz'" "names the unknown adapter"
            Expect.stringContains unknown "row 1" "and its row"
            Expect.isNull adapters.RowAdapters "nothing routed after a refusal"
            Expect.stringContains (errorOf (fun () -> adapters.SetRowAdapters [||])) "empty" "an empty batch"
            adapters.SetRowAdapters [| "a"; null |]
            let wrongBatch = errorOf (fun () -> logits m batch)
            Expect.stringContains wrongBatch "2 rows are routed" "a batch of another size"
            Expect.stringContains wrongBatch "model.layers." "names the layer"
            Expect.stringContains (errorOf (fun () -> adapters.Remove "a")) "'a'" "removing a routed adapter"
            adapters.SetActive "b"
            Expect.stringContains (errorOf (fun () -> adapters.Merge "b")) "routed" "merging while rows are routed"
            adapters.ClearRowAdapters()
            adapters.Merge "b"
            let merged = errorOf (fun () -> adapters.SetRowAdapters [| "a"; null; null |])
            Expect.stringContains merged "'b' is merged" "a merged adapter is in every row"
            adapters.Unmerge "b"
            adapters.SetRowAdapters [| "a"; null; null |]
            use ok = logits m batch
            Expect.equal ok.shape[0] 3L "after the refusals a good routing works"
            adapters.ClearRowAdapters()
            adapters.Remove "a"
            Expect.isFalse (adapters.Contains "a") "removed once no longer routed"
        }
    ]
