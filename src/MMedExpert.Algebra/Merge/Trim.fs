/// TIES step 1: keep each expert's largest-magnitude entries, zero the rest.
module MMedExpert.Algebra.Merge.Trim

open System
open TorchSharp

/// How many of n entries a trim at `density` keeps: ⌈density·n⌉. A product within 1e-9 (relative) of an integer counts
/// as that integer, so that binary floating point does not turn 0.3·10 = 3.0000000000000004 into 4.
let keepCount (density: float) (n: int64) : int64 =
    if Double.IsNaN density || density < 0.0 || density > 1.0 then
        invalidArg (nameof density) (sprintf "density must lie in [0, 1], got %g" density)
    let x = density * float n
    let nearest = Math.Round x
    let k = if abs (x - nearest) <= 1e-9 * max 1.0 x then nearest else Math.Ceiling x
    int64 k |> min n |> max 0L

/// Keeps exactly keepCount density n entries of x (n = numel) with the largest |x|, zeroing the others. Tie rule:
/// among equal magnitudes at the threshold, lower flat (row-major) index first, i.e. the order of a stable sort by
/// |x| descending. Runs in O(n) via a k-th-value selection, not a full sort.
let trim (density: float) (x: Tensor) : Tensor =
    let n = x.numel ()
    let k = keepCount density n
    Tensors.scoped (fun () ->
        if k = n then x.clone ()
        elif k = 0L then torch.zeros_like x
        else
            let magnitude = x.abs().flatten()
            // The k-th largest magnitude is the (n-k+1)-th smallest.
            let struct (threshold, _) = magnitude.kthvalue (n - k + 1L, System.Nullable 0L, false)
            let above = magnitude.gt threshold
            let tied = magnitude.eq threshold
            let stillNeeded = k - above.sum(``type`` = ScalarType.Int64).item<int64> ()
            let tieOrder = tied.to_type(ScalarType.Int64).cumsum(0L)
            let keep = above.logical_or(tied.logical_and(tieOrder.le(Scalar.op_Implicit stillNeeded))).reshape(x.shape)
            x.masked_fill(keep.logical_not (), Scalar.op_Implicit 0.0))

/// Trims every expert at the same density.
let trimAll (density: float) (xs: Tensor list) : Tensor list = xs |> List.map (trim density)
