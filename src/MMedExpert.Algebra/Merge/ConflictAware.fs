/// The project's reading of the paper's conflict-aware capability integration (derivation in paper/merge.md):
/// trim >> electSign >> disjointMean >> scale, where the scale of each module is the least-squares fit of the TIES
/// merge to what the experts asked for on the entries each of them kept. It is exactly 1 (plain TIES) when no kept entry
/// disagrees with its elected sign, and shrinks the module's update toward the base as the overruled mass grows.
module MMedExpert.Algebra.Merge.ConflictAware

open TorchSharp

/// The merged delta of one module and the factor it was scaled by.
type ConflictAwareMerge = { Delta: Tensor; Scale: float }

/// α* = argmin_α Σᵢ wᵢ Σ_{j∈Sᵢ} (α·mⱼ − tᵢⱼ)² = ⟨m, Σᵢ wᵢtᵢ⟩ / ⟨m², Σᵢ wᵢ·[tᵢ≠0]⟩, with tᵢ the trimmed experts,
/// Sᵢ their kept entries and m their disjoint mean. Each expert is modelled as a diagonal quadratic loss around its own
/// update on the entries it kept (the entries it cares about) and indifferent elsewhere. Returns exactly 1 when no
/// kept entry opposes its elected sign: then mⱼ is the weighted mean of every expert that kept j and α* = 1 in exact
/// arithmetic, so rounding is not allowed to perturb plain TIES. Always in [0, 1] since mⱼ has the sign of Σᵢ wᵢtᵢⱼ.
let conflictScale (weights: float list) (elected: Tensor) (trimmed: Tensor list) (merged: Tensor) : float =
    Tensors.scopedValue (fun () ->
        let first = List.head trimmed
        let opposed = torch.zeros (first.shape, dtype = ScalarType.Bool)
        let target = torch.zeros_like first
        let support = torch.zeros_like first
        for w, t in List.zip weights trimmed do
            use _step = torch.NewDisposeScope()
            let nonzero = t.ne (Scalar.op_Implicit 0.0)
            let agrees = Sign.signConsensus elected t
            opposed.logical_or_ (nonzero.logical_and (agrees.logical_not ())) |> ignore
            target.add_ (t, alpha = Scalar.op_Implicit w) |> ignore
            support.add_ (nonzero.to_type first.dtype, alpha = Scalar.op_Implicit w) |> ignore
        if not (opposed.any().item<bool> ()) then 1.0
        else
            let numerator = Tensors.dot64 merged target
            let denominator = Tensors.dot64 (merged.mul merged) support
            if denominator <= 0.0 then 1.0 else numerator / denominator |> max 0.0 |> min 1.0)

/// TIES followed by the conflict scale: α = 1 − strength·(1 − α*). strength 0 is plain TIES, 1 the full fit.
let conflictAware (density: float) (strength: float) (weights: float list) (xs: Tensor list) : ConflictAwareMerge =
    if System.Double.IsNaN strength || strength < 0.0 || strength > 1.0 then
        invalidArg (nameof strength) (sprintf "conflict strength must lie in [0, 1], got %g" strength)
    use _scope = torch.NewDisposeScope()
    let trimmed = Trim.trimAll density xs
    let elected = Sign.electSignWeighted weights trimmed
    let merged = DisjointMean.disjointWeightedMean weights elected trimmed
    let fitted = conflictScale weights elected trimmed merged
    let alpha = 1.0 - strength * (1.0 - fitted)
    let delta = if alpha = 1.0 then merged else merged.mul (Scalar.op_Implicit alpha)
    { Delta = delta.MoveToOuterDisposeScope(); Scale = alpha }
