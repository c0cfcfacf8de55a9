/// TIES step 3: per entry, the (weighted) mean over only the experts that agree with the elected sign.
module MMedExpert.Algebra.Merge.DisjointMean

open TorchSharp

/// Σ wᵢ·xᵢ / Σ wᵢ over the experts in sign consensus with `elected` at each entry; 0 where none agrees. Experts that
/// are zero at an entry are not counted, so an expert that does not touch an entry does not dilute it.
let disjointWeightedMean (weights: float list) (elected: Tensor) (xs: Tensor list) : Tensor =
    Tensors.requireNonEmpty (nameof xs) xs
    Tensors.requireSameShape xs
    if List.length weights <> List.length xs then
        invalidArg (nameof weights) (sprintf "%d weights for %d experts" (List.length weights) (List.length xs))
    Tensors.scoped (fun () ->
        let first = List.head xs
        let numerator = torch.zeros_like first
        let denominator = torch.zeros_like first
        // With e ∈ {−1, 0, +1}: relu(x·e) is |x| where x agrees with e and 0 elsewhere, so Σ wᵢ·relu(xᵢ·e) times e is
        // the agreeing sum, and sign(relu(xᵢ·e)) its indicator. Five passes per expert instead of a chain of masks.
        for w, x in List.zip weights xs do
            use _step = torch.NewDisposeScope()
            let agreeing = x.mul(elected).relu_ ()
            numerator.add_ (agreeing, alpha = Scalar.op_Implicit w) |> ignore
            denominator.add_ (agreeing.sign_ (), alpha = Scalar.op_Implicit w) |> ignore
        let none = denominator.eq (Scalar.op_Implicit 0.0)
        numerator.mul_(elected).div_(denominator.masked_fill_ (none, Scalar.op_Implicit 1.0)).masked_fill_(none, Scalar.op_Implicit 0.0))

/// disjointWeightedMean with all weights 1: the plain mean over agreeing experts.
let disjointMean (elected: Tensor) (xs: Tensor list) : Tensor =
    disjointWeightedMean (List.replicate (List.length xs) 1.0) elected xs
