/// The task vector of one LoRA expert on one module: its full change to the base weight, ΔW = scale·B·A.
module MMedExpert.Algebra.Merge.LoraDelta

open System
open TorchSharp

/// PEFT's LoRA scale: alpha/r, or alpha/√r for rank-stabilised LoRA (use_rslora).
let scale (alpha: float) (rank: int) (useRsLora: bool) : float =
    if rank <= 0 then invalidArg (nameof rank) (sprintf "LoRA rank must be positive, got %d" rank)
    if useRsLora then alpha / Math.Sqrt(float rank) else alpha / float rank

/// ΔW = scale·B·A with B: out×r and A: r×in, computed in float32 (or float64 when both factors are float64).
/// Experts are merged on ΔW, never on A and B separately: averaging the factors gives (ΣBᵢ)(ΣAⱼ)/N², whose cross terms
/// Bᵢ·Aⱼ (i ≠ j) are updates that no expert ever made, and the factors of independently trained adapters are not even
/// aligned (any invertible R gives the same ΔW from B·R and R⁻¹·A).
let delta (scale: float) (b: Tensor) (a: Tensor) : Tensor =
    if b.dim () <> 2L || a.dim () <> 2L then
        invalidArg (nameof b) (sprintf "LoRA factors must be matrices, got B %A and A %A" b.shape a.shape)
    if b.shape[1] <> a.shape[0] then
        invalidArg (nameof a) (sprintf "LoRA rank differs between B %A and A %A" b.shape a.shape)
    Tensors.scoped (fun () ->
        let dtype =
            if b.dtype = ScalarType.Float64 && a.dtype = ScalarType.Float64 then ScalarType.Float64 else ScalarType.Float32
        b.to_type(dtype).matmul(a.to_type(dtype)).mul_(Scalar.op_Implicit scale))
