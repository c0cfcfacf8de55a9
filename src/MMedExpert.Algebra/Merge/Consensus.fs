/// Magnitude-consensus mask: entries that several experts consider important (after Wang et al. 2024, "Localizing
/// Task Information for Improved Model Merging and Compression": weights relevant to a single task or to none add
/// interference and can be dropped).
module MMedExpert.Algebra.Merge.Consensus

open TorchSharp

/// True where at least `minExperts` experts keep the entry in their top-`density` magnitudes (Trim.trim's rule).
let magnitudeConsensus (density: float) (minExperts: int) (xs: Tensor list) : Tensor =
    Tensors.requireNonEmpty (nameof xs) xs
    Tensors.requireSameShape xs
    Tensors.scoped (fun () ->
        let votes = torch.zeros ((List.head xs).shape, dtype = ScalarType.Int32)
        for x in xs do
            use kept = Trim.trim density x
            votes.add_ (kept.ne(Scalar.op_Implicit 0.0).to_type (ScalarType.Int32)) |> ignore
        votes.ge (Scalar.op_Implicit minExperts))

/// Zeroes x where mask is false.
let applyMask (mask: Tensor) (x: Tensor) : Tensor =
    Tensors.scoped (fun () -> x.masked_fill(mask.logical_not (), Scalar.op_Implicit 0.0))
