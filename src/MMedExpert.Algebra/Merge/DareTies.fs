/// DARE-TIES: DARE's random drop-and-rescale replaces TIES's magnitude trim; sign election and the disjoint mean follow.
module MMedExpert.Algebra.Merge.DareTies

open TorchSharp

/// electSign >> disjointMean over the DARE-sparsified experts.
let dareTies (p: float) (seeds: uint64 list) (weights: float list) (xs: Tensor list) : Tensor =
    Tensors.scoped (fun () ->
        let dropped = Dare.dareAll p seeds xs
        let elected = Sign.electSignWeighted weights dropped
        DisjointMean.disjointWeightedMean weights elected dropped)
