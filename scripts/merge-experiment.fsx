// Merge experiment: what task arithmetic, TIES and the conflict-aware merge keep of each expert when the experts agree,
// when they are independent, and when one of them pulls against the others. The experts are synthetic LoRA task vectors
// (ΔW = B·A·α/r) on one module, built so that the amount of conflict is known; the merges are the library's own
// (MMedExpert.Algebra.Merge.Merge.mergeModule, the function `mmx merge` calls per module).
//
//   dotnet fsi scripts/merge-experiment.fsx [SEED]
//
// For each scenario and method it prints, per expert i, the retention ⟨M, Δᵢ⟩ / ‖Δᵢ‖² (1: the merged update M moves
// the weights as far along expert i's update as the expert itself did; 0: nothing of it is left; < 0: M undoes it),
// the cosine of M with Δᵢ, the norm of M relative to the experts', and the conflict scale the conflict-aware merge chose.
// Then it sweeps the trim density, the knob TIES and the conflict-aware merge share.
#load "References.fsx"

open System
open TorchSharp
open References
open MMedExpert.Algebra.Merge

let seed = if scriptArgs.Length > 0 then int64 scriptArgs[0] else 20260101L
torch.manual_seed seed |> ignore

let experts = [ "adult_medicine"; "pediatrics"; "brain_senses"; "oncology_surgery" ]
let outFeatures, inFeatures, rank, alpha = 96L, 64L, 8, 16.0
let moduleName = "model.layers.0.mlp.down_proj"

/// A LoRA task vector: scale·B·A with B, A Gaussian (as a trained adapter's factors look, up to their spectra).
let loraDelta () =
    let b = torch.randn (outFeatures, int64 rank)
    let a = torch.randn(int64 rank, inFeatures).div_ (Scalar.op_Implicit (sqrt (float inFeatures)))
    LoraDelta.delta (LoraDelta.scale alpha rank false) b a

/// Four experts: a shared update (a skill every specialty learns) plus each expert's own. `sharedWeight` sets how much
/// they agree; `opposed` flips expert 4's shared part, so it pulls against the other three where they agree.
let scenario (sharedWeight: float) (opposed: bool) =
    let shared = loraDelta ()
    experts |> List.mapi (fun i _ ->
        let own = loraDelta ()
        let sign = if opposed && i = experts.Length - 1 then -1.0 else 1.0
        own.add (shared, alpha = Scalar.op_Implicit (sign * sharedWeight)))

let scenarios =
    [ "independent (no shared update)", scenario 0.0 false
      "agreeing (shared update, weight 1.5)", scenario 1.5 false
      "one opposed (expert 4 flips the shared update)", scenario 1.5 true ]

let dot (a: torch.Tensor) (b: torch.Tensor) = a.mul(b).sum(``type`` = ScalarType.Float64).item<float> ()
let norm (a: torch.Tensor) = sqrt (dot a a)

// Weights 1/N: task arithmetic becomes the mean of the experts, on the same scale as TIES' disjoint mean.
let configFor (method: MergeMethod) (density: float) =
    { MergeConfig.defaults with
        Method = method
        Density = density
        Weights = Array.create experts.Length (1.0 / float experts.Length) }

let methods = [ TaskArithmetic; Ties; ConflictAware ]

let report (deltas: torch.Tensor list) (merged: Merge.ModuleMerge) =
    let m = merged.Delta
    let retention = deltas |> List.map (fun d -> dot m d / dot d d)
    let cosine = deltas |> List.map (fun d -> dot m d / (norm m * norm d))
    let relativeNorm = norm m / (deltas |> List.averageBy norm)
    retention, cosine, relativeNorm

let show (xs: float list) = xs |> List.map (sprintf "%+.2f") |> String.concat " "

printfn "experts: %s; module %s, %d×%d, LoRA rank %d, α %g; seed %d" (String.concat ", " experts) moduleName outFeatures inFeatures rank alpha seed
for name, deltas in scenarios do
    let c = Conflicts.measure moduleName deltas
    let pairwise =
        [ for i in 0 .. experts.Length - 1 do
            for j in i + 1 .. experts.Length - 1 do
                let x = c.Cosine.[i].[j] in if x.HasValue then yield x.Value ]
    printfn "\n== %s" name
    printfn "conflicts: sign disagreement %.3f of %d contested entries; pairwise cosine mean %+.3f (min %+.3f); norm ratio %.2f"
        c.SignDisagreement c.ContestedEntries (List.average pairwise) (List.min pairwise) (if c.NormRatio.HasValue then c.NormRatio.Value else nan)
    printfn "%-16s %-24s %-24s %8s %6s" "method" "retention per expert" "cosine per expert" "‖M‖ rel" "scale"
    for method in methods do
        let merged = Merge.mergeModule (configFor method 0.2) moduleName deltas
        let retention, cosine, relativeNorm = report deltas merged
        for x in retention @ cosine do
            if Double.IsNaN x then failwithf "%s: NaN in the measures of %s" name (MergeMethod.name method)
        printfn "%-16s %-24s %-24s %8.2f %6.2f" (MergeMethod.name method) (show retention) (show cosine) relativeNorm merged.ConflictScale
        merged.Delta.Dispose()

// The trim density: what TIES and the conflict-aware merge keep of the opposed expert and of the others.
let _, opposedDeltas = scenarios[2]
printfn "\n== density sweep, one opposed expert: retention of experts 1–3 (mean) and of expert 4"
printfn "%-8s %-20s %s" "density" "ties (1–3 | 4)" "conflict_aware (1–3 | 4), scale"
for density in [ 0.05; 0.1; 0.2; 0.4; 0.7; 1.0 ] do
    let row method =
        let merged = Merge.mergeModule (configFor method density) moduleName opposedDeltas
        let retention, _, _ = report opposedDeltas merged
        merged.Delta.Dispose()
        List.average (List.take 3 retention), List.last retention, merged.ConflictScale
    let t3, t4, _ = row Ties
    let c3, c4, scale = row ConflictAware
    printfn "%-8.2f %-20s %s" density (sprintf "%+.3f | %+.3f" t3 t4) (sprintf "%+.3f | %+.3f, %.2f" c3 c4 scale)
