/// DARE followed by task arithmetic ("dare" in mergekit's vocabulary): each expert is sparsified at random and
/// rescaled, then the experts are summed with their weights.
module MMedExpert.Algebra.Merge.DareLinear

open TorchSharp

/// Σ wᵢ·dare(p, seedᵢ, xᵢ).
let dareLinear (p: float) (seeds: uint64 list) (weights: float list) (xs: Tensor list) : Tensor =
    Tensors.scoped (fun () -> TaskArithmetic.taskArithmetic weights (Dare.dareAll p seeds xs))
