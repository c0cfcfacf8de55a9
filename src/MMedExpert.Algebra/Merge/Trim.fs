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

/// Where a trim cuts one expert: it keeps every entry with |x| > Threshold, and of the entries with |x| = Threshold
/// the first TiesToKeep in flat (row-major) order. Found once over the whole tensor, then applied chunk by chunk.
type Cut = { Keep: int64; Threshold: float; TiesToKeep: int64; TiesTotal: int64 }

let private chunksOf (flat: Tensor) : seq<Tensor> =
    let n = flat.shape[0]
    seq { for start in 0L .. Tensors.chunkEntries .. n - 1L -> flat.narrow(0L, start, min Tensors.chunkEntries (n - start)) }

let private countWhere (flat: Tensor) (predicate: Tensor -> Tensor) : int64 =
    chunksOf flat |> Seq.sumBy (fun c -> Tensors.scopedValue (fun () -> (predicate (c.abs ())).sum(``type`` = ScalarType.Int64).item<int64> ()))

/// The exact cut of a trim at `density`: the k-th largest magnitude (k = keepCount) and how many entries tied with it
/// are kept. O(n): a histogram of |x| brackets the k-th value, and only the entries in that bracket are selected from.
let cut (density: float) (x: Tensor) : Cut =
    let n = x.numel ()
    let k = keepCount density n
    if k = n then { Keep = k; Threshold = -1.0; TiesToKeep = 0L; TiesTotal = 0L }
    elif k = 0L then { Keep = 0L; Threshold = Double.PositiveInfinity; TiesToKeep = 0L; TiesTotal = 0L }
    else
        Tensors.scopedValue (fun () ->
            let flat = x.flatten ()
            let maxAbs = chunksOf flat |> Seq.map (fun c -> Tensors.scopedValue (fun () -> c.abs().max().to_type(ScalarType.Float64).item<float> ())) |> Seq.max
            if maxAbs = 0.0 then { Keep = k; Threshold = 0.0; TiesToKeep = k; TiesTotal = n }
            else
                let bins = 4096
                let counts = Array.zeroCreate<int64> bins
                for c in chunksOf flat do
                    Tensors.scopedValue (fun () ->
                        let h = c.abs().div_(Scalar.op_Implicit maxAbs).histc(int64 bins, 0L, 1L).to_type(ScalarType.Int64).data<int64>().ToArray()
                        for i in 0 .. bins - 1 do counts[i] <- counts[i] + h[i])
                // The bin holding the k-th largest, widened by one bin each way against the histogram's rounding.
                let mutable fromTop = 0L
                let mutable b = bins - 1
                while b > 0 && fromTop + counts[b] < k do
                    fromTop <- fromTop + counts[b]
                    b <- b - 1
                let width = maxAbs / float bins
                // Exact: the count above hi, and every magnitude in [lo, hi].
                let bracket (lo: float) (hi: float) =
                    let mutable above = 0L
                    let parts = ResizeArray()
                    for c in chunksOf flat do
                        use _c = torch.NewDisposeScope()
                        let a = c.abs ()
                        above <- above + a.gt(Scalar.op_Implicit hi).sum(``type`` = ScalarType.Int64).item<int64> ()
                        parts.Add((a.masked_select (a.ge(Scalar.op_Implicit lo).logical_and (a.le (Scalar.op_Implicit hi)))).MoveToOuterDisposeScope())
                    let candidates = torch.cat (parts, 0L)
                    for p in parts do p.Dispose()
                    above, candidates
                let above, candidates =
                    let above, candidates = bracket (float (b - 1) * width) (float (b + 2) * width)
                    if above < k && k <= above + candidates.shape[0] then above, candidates
                    else candidates.Dispose(); bracket -1.0 (maxAbs + 1.0) // the whole range: always brackets
                use candidates = candidates
                let struct (value, _) = candidates.kthvalue (candidates.shape[0] - (k - above) + 1L, Nullable 0L, false)
                let threshold = value.to_type(ScalarType.Float64).item<float> ()
                // The threshold lies in the bracket, so every entry tied with it, or above it but below hi, is a candidate.
                let candidatesAbove = candidates.gt(value).sum(``type`` = ScalarType.Int64).item<int64> ()
                let ties = candidates.eq(value).sum(``type`` = ScalarType.Int64).item<int64> ()
                { Keep = k; Threshold = threshold; TiesToKeep = k - above - candidatesAbove; TiesTotal = ties })

/// Applies a cut to one chunk of the expert (the chunks taken in flat order); `tiesBefore` counts the tied entries in
/// the chunks before this one. Returns the trimmed chunk and the tie count to pass to the next chunk.
let applyCut (cut: Cut) (tiesBefore: int64) (chunk: Tensor) : Tensor * int64 =
    use _scope = torch.NewDisposeScope()
    let magnitude = chunk.abs ()
    let threshold = Scalar.op_Implicit cut.Threshold
    // Usually every tie is kept or none is: then one comparison decides, and the tie count does not matter.
    if cut.TiesToKeep = cut.TiesTotal then
        chunk.masked_fill(magnitude.lt threshold, Scalar.op_Implicit 0.0).MoveToOuterDisposeScope(), tiesBefore
    elif cut.TiesToKeep = 0L then
        chunk.masked_fill(magnitude.le threshold, Scalar.op_Implicit 0.0).MoveToOuterDisposeScope(), tiesBefore
    else
        let flat = magnitude.flatten ()
        let tied = flat.eq threshold
        let tieOrder = tied.to_type(ScalarType.Int64).cumsum(0L).add_ (Scalar.op_Implicit tiesBefore)
        let keep = flat.gt(threshold).logical_or(tied.logical_and (tieOrder.le (Scalar.op_Implicit cut.TiesToKeep))).reshape (chunk.shape)
        let tiesSeen = tiesBefore + tied.sum(``type`` = ScalarType.Int64).item<int64> ()
        chunk.masked_fill(keep.logical_not (), Scalar.op_Implicit 0.0).MoveToOuterDisposeScope(), tiesSeen

/// Keeps exactly keepCount density n entries of x (n = numel) with the largest |x|, zeroing the others. Tie rule:
/// among equal magnitudes at the threshold, lower flat (row-major) index first, i.e. the order of a stable sort by
/// |x| descending.
let trim (density: float) (x: Tensor) : Tensor = fst (applyCut (cut density x) 0L x)

/// Trims every expert at the same density.
let trimAll (density: float) (xs: Tensor list) : Tensor list = xs |> List.map (trim density)
