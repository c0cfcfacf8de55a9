/// Re-factorises a merged ΔW (out×in) into a rank-R LoRA pair B (out×R), A (R×in) by truncated SVD (Eckart–Young:
/// the best rank-R approximation in Frobenius norm), and reports what the truncation lost.
module MMedExpert.Algebra.Merge.Refactor

open System
open TorchSharp

/// How the singular vectors are found.
type SvdMethod =
    /// LAPACK's full thin SVD: exact, O(out·in·min(out,in)).
    | Exact
    /// Halko–Martinsson–Tropp randomised range finder: a Gaussian sketch with `Oversample` extra columns, `PowerIterations`
    /// re-orthonormalised power steps, then an exact SVD of the small projected matrix. O(out·in·(R+oversample)).
    | Randomized of Oversample: int * PowerIterations: int * Seed: uint64

type Factorization =
    { B: Tensor
      A: Tensor
      Rank: int
      /// ‖ΔW − B·A‖_F / ‖ΔW‖_F (0 for a zero ΔW).
      RelativeError: float }

/// Exact SVD when the sketch would not be much smaller than the matrix, randomised (oversample 10, 2 power iterations)
/// otherwise.
let chooseMethod (rank: int) (rows: int64) (columns: int64) (seed: uint64) : SvdMethod =
    if int64 (4 * (rank + 10)) >= min rows columns then Exact else Randomized(10, 2, seed)

let private thinSvd (m: Tensor) =
    let struct (u, s, vh) = torch.linalg.svd (m, fullMatrices = false)
    u, s, vh

let private orthonormal (y: Tensor) = let struct (q, _) = torch.linalg.qr (y, torch.linalg.QRMode.Reduced) in q

let private randomizedSvd (oversample: int) (powerIterations: int) (seed: uint64) (rank: int) (m: Tensor) =
    let columns = min (int64 (rank + oversample)) (min m.shape[0] m.shape[1])
    use generator = new torch.Generator(seed, torch.CPU)
    let omega = torch.randn ([| m.shape[1]; columns |], dtype = m.dtype, generator = generator)
    let mutable q = orthonormal (m.matmul omega)
    for _ in 1 .. powerIterations do
        // (Qᵀ·M)ᵀ rather than Mᵀ·Q: only the small product is transposed, never the large matrix.
        let z = orthonormal (q.t().matmul(m).t())
        q <- orthonormal (m.matmul z)
    let uSmall, s, vh = thinSvd (q.t().matmul m)
    q.matmul uSmall, s, vh

/// ‖M − B·A‖_F in row blocks (no full-size temporary), accumulated in float64.
let private residualNorm (m: Tensor) (b: Tensor) (a: Tensor) : float =
    let rows = m.shape[0]
    let step = max 1L (Tensors.chunkEntries / max 1L m.shape[1])
    let mutable total = 0.0
    for start in 0L .. step .. rows - 1L do
        use _block = torch.NewDisposeScope()
        let len = min step (rows - start)
        let r = m.narrow(0L, start, len).sub (b.narrow(0L, start, len).matmul a)
        total <- total + Tensors.dot64 r r
    sqrt total

/// Rank-`rank` factors with the singular values split evenly (B = U√S, A = √S·Vᴴ), so both factors have the same scale
/// and the pair trains well if fine-tuned further. The rank is capped at min(out, in).
let refactor (svd: SvdMethod) (rank: int) (delta: Tensor) : Factorization =
    if delta.dim () <> 2L then invalidArg (nameof delta) (sprintf "expected a matrix, got shape %A" delta.shape)
    if rank < 1 then invalidArg (nameof rank) (sprintf "rank must be positive, got %d" rank)
    use _scope = torch.NewDisposeScope()
    let r = min (int64 rank) (min delta.shape[0] delta.shape[1])
    let m = if delta.dtype = ScalarType.Float64 then delta else delta.to_type ScalarType.Float32
    let u, s, vh =
        match svd with
        | Exact -> thinSvd m
        | Randomized(oversample, iterations, seed) -> randomizedSvd oversample iterations seed (int r) m
    let root = s.narrow(0L, 0L, r).sqrt ()
    let b = u.narrow(1L, 0L, r).mul (root.unsqueeze 0L)
    let a = vh.narrow(0L, 0L, r).mul (root.unsqueeze 1L)
    let total = Tensors.norm64 m
    let error = if total = 0.0 then 0.0 else residualNorm m b a / total
    { B = b.contiguous().MoveToOuterDisposeScope()
      A = a.contiguous().MoveToOuterDisposeScope()
      Rank = int r
      RelativeError = error }

/// The relative error of given factors against ΔW (e.g. after casting them to the output dtype).
let relativeError (delta: Tensor) (b: Tensor) (a: Tensor) : float =
    Tensors.scopedValue (fun () ->
        let m = if delta.dtype = ScalarType.Float64 then delta else delta.to_type ScalarType.Float32
        let total = Tensors.norm64 m
        if total = 0.0 then 0.0 else residualNorm m (b.to_type m.dtype) (a.to_type m.dtype) / total)
