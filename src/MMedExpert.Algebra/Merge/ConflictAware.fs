/// The project's reading of the paper's conflict-aware capability integration (derivation in paper/merge.md):
/// trim >> electSign >> disjointMean >> scale, where the scale of each module is the least-squares fit of the TIES
/// merge to what the experts asked for on the entries each of them kept. It is exactly 1 (plain TIES) when no kept entry
/// disagrees with its elected sign, and shrinks the module's update toward the base as the overruled mass grows.
module MMedExpert.Algebra.Merge.ConflictAware

open TorchSharp

/// The merged delta of one module and the factor it was scaled by.
type ConflictAwareMerge = { Delta: Tensor; Scale: float }

/// The sums behind the conflict scale; they add over chunks of a module.
type ScaleTerms =
    { /// ⟨m, Σᵢ wᵢtᵢ⟩
      Numerator: float
      /// ⟨m², Σᵢ wᵢ·[tᵢ≠0]⟩
      Denominator: float
      /// Whether any kept entry opposes its elected sign.
      Opposed: bool }

let noTerms = { Numerator = 0.0; Denominator = 0.0; Opposed = false }

let addTerms (a: ScaleTerms) (b: ScaleTerms) =
    { Numerator = a.Numerator + b.Numerator; Denominator = a.Denominator + b.Denominator; Opposed = a.Opposed || b.Opposed }

/// The conflict-scale sums of the trimmed experts tᵢ, their elected signs and disjoint mean m (a whole module or a chunk).
let scaleTerms (weights: float list) (elected: Tensor) (trimmed: Tensor list) (merged: Tensor) : ScaleTerms =
    Tensors.scopedValue (fun () ->
        let first = List.head trimmed
        let target = torch.zeros_like first
        let support = torch.zeros_like first
        let mutable kept = 0L
        let mutable agreeing = 0L
        for w, t in List.zip weights trimmed do
            use _step = torch.NewDisposeScope()
            let nonzero = t.ne (Scalar.op_Implicit 0.0)
            kept <- kept + nonzero.sum(``type`` = ScalarType.Int64).item<int64> ()
            agreeing <- agreeing + (Sign.signConsensus elected t).sum(``type`` = ScalarType.Int64).item<int64> ()
            target.add_ (t, alpha = Scalar.op_Implicit w) |> ignore
            support.add_ (nonzero.to_type first.dtype, alpha = Scalar.op_Implicit w) |> ignore
        { Numerator = Tensors.dot64 merged target
          Denominator = Tensors.dot64 (merged.mul merged) support
          // Every kept entry either agrees with its elected sign or opposes it.
          Opposed = kept > agreeing })

/// α* = argmin_α Σᵢ wᵢ Σ_{j∈Sᵢ} (α·mⱼ − tᵢⱼ)² = ⟨m, Σᵢ wᵢtᵢ⟩ / ⟨m², Σᵢ wᵢ·[tᵢ≠0]⟩, with Sᵢ the entries expert i kept.
/// Each expert is modelled as a diagonal quadratic loss around its own update on the entries it kept (the entries it
/// cares about) and indifferent elsewhere. Exactly 1 when no kept entry opposes its elected sign: then mⱼ is the
/// weighted mean of every expert that kept j and α* = 1 in exact arithmetic, so rounding is not allowed to perturb
/// plain TIES. Always in [0, 1] since mⱼ has the sign of Σᵢ wᵢtᵢⱼ.
let scaleOf (terms: ScaleTerms) : float =
    if not terms.Opposed || terms.Denominator <= 0.0 then 1.0
    else terms.Numerator / terms.Denominator |> max 0.0 |> min 1.0

/// α* of a whole module.
let conflictScale (weights: float list) (elected: Tensor) (trimmed: Tensor list) (merged: Tensor) : float =
    scaleOf (scaleTerms weights elected trimmed merged)

/// α = 1 − strength·(1 − α*): strength 0 is plain TIES, 1 the full fit.
let withStrength (strength: float) (fitted: float) : float =
    if System.Double.IsNaN strength || strength < 0.0 || strength > 1.0 then
        invalidArg (nameof strength) (sprintf "conflict strength must lie in [0, 1], got %g" strength)
    1.0 - strength * (1.0 - fitted)

/// TIES followed by the conflict scale α.
let conflictAware (density: float) (strength: float) (weights: float list) (xs: Tensor list) : ConflictAwareMerge =
    use _scope = torch.NewDisposeScope()
    let trimmed = Trim.trimAll density xs
    let elected = Sign.electSignWeighted weights trimmed
    let merged = DisjointMean.disjointWeightedMean weights elected trimmed
    let alpha = withStrength strength (conflictScale weights elected trimmed merged)
    let delta = if alpha = 1.0 then merged else merged.mul (Scalar.op_Implicit alpha)
    { Delta = delta.MoveToOuterDisposeScope(); Scale = alpha }
