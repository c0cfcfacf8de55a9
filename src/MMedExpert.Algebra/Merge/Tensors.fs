/// Small helpers the merge steps share: dispose scopes, sums, float64 reductions.
module MMedExpert.Algebra.Merge.Tensors

open TorchSharp

/// Runs `f` in its own dispose scope and keeps only its result alive. Every step returns a NEW tensor (never one of
/// its inputs), so moving the result out cannot change the lifetime of a caller's tensor.
let scoped (f: unit -> Tensor) : Tensor =
    use _scope = torch.NewDisposeScope()
    (f ()).MoveToOuterDisposeScope()

/// Runs `f` in its own dispose scope for a plain .NET result (intermediate tensors are freed on return).
let scopedValue (f: unit -> 'a) : 'a =
    use _scope = torch.NewDisposeScope()
    f ()

let requireNonEmpty (name: string) (xs: Tensor list) =
    if List.isEmpty xs then invalidArg name "needs at least one expert tensor"

let requireSameShape (xs: Tensor list) =
    match xs with
    | [] -> ()
    | first :: rest ->
        for x in rest do
            if x.shape <> first.shape then
                invalidArg "tensors" (sprintf "experts differ in shape: %A vs %A" first.shape x.shape)

/// Σ wᵢ·xᵢ, accumulated in place into a fresh tensor.
let weightedSum (weights: float list) (xs: Tensor list) : Tensor =
    requireNonEmpty (nameof xs) xs
    if List.length weights <> List.length xs then
        invalidArg (nameof weights) (sprintf "%d weights for %d experts" (List.length weights) (List.length xs))
    requireSameShape xs
    scoped (fun () ->
        let acc = torch.zeros_like (List.head xs)
        for w, x in List.zip weights xs do
            acc.add_ (x, alpha = Scalar.op_Implicit w) |> ignore
        acc)

/// Σ over all entries, accumulated in float64 (float32 sums of 10⁸ entries lose digits).
let sum64 (x: Tensor) : float = scopedValue (fun () -> x.sum(``type`` = ScalarType.Float64).item<float> ())

/// ⟨a, b⟩ with a float64 total: float64 tensors directly; others in chunks of 2²⁰ float32 entries (BLAS dot per chunk)
/// so that no float64 copy of a 68M-entry module is ever made.
let dot64 (a: Tensor) (b: Tensor) : float =
    if a.shape <> b.shape then invalidArg (nameof b) (sprintf "shapes differ: %A vs %A" a.shape b.shape)
    scopedValue (fun () ->
        let fa, fb = a.flatten (), b.flatten ()
        if fa.dtype = ScalarType.Float64 && fb.dtype = ScalarType.Float64 then fa.dot(fb).item<float> ()
        else
            let n = fa.shape[0]
            let chunk = 1L <<< 20
            let mutable total = 0.0
            let mutable start = 0L
            while start < n do
                use _inner = torch.NewDisposeScope()
                let len = min chunk (n - start)
                let ca = fa.narrow(0L, start, len).to_type(ScalarType.Float32)
                let cb = fb.narrow(0L, start, len).to_type(ScalarType.Float32)
                total <- total + float (ca.dot(cb).item<float32> ())
                start <- start + len
            total)

/// Frobenius norm accumulated in float64.
let norm64 (x: Tensor) : float = sqrt (dot64 x x)

/// Entries per block of the chunked passes (4 MiB of float32: cache-friendly, and small enough that the allocator
/// recycles buffers instead of mapping fresh pages for every temporary of a 68M-entry module).
let chunkEntries = 1L <<< 20

/// Rows of dimension 0 per block, so that a block holds about chunkEntries entries.
let rowsPerChunk (shape: int64[]) : int64 =
    if shape.Length = 0 then 1L
    else
        let perRow = shape |> Array.skip 1 |> Array.fold (*) 1L |> max 1L
        max 1L (chunkEntries / perRow)
