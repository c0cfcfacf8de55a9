/// TIES-merging (Yadav et al. 2023, "Resolving Interference When Merging Models"): trim >> electSign >> disjointMean.
module MMedExpert.Algebra.Merge.Ties

open TorchSharp

/// Trims each expert to its top-`density` magnitudes, elects a sign per entry by weighted summed mass and averages
/// only the experts that agree with it (weighted by their expert weights).
let ties (density: float) (weights: float list) (xs: Tensor list) : Tensor =
    Tensors.scoped (fun () ->
        let trimmed = Trim.trimAll density xs
        let elected = Sign.electSignWeighted weights trimmed
        DisjointMean.disjointWeightedMean weights elected trimmed)
