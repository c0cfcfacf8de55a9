/// DARE (Yu et al. 2024, "Language Models are Super Mario"): drop each entry with probability p and rescale the
/// survivors by 1/(1−p), so the expected task vector is unchanged while most entries become zero.
module MMedExpert.Algebra.Merge.Dare

open System
open System.Text
open TorchSharp

/// A seed for one (expert, module) pair: FNV-1a of the module name mixed with the expert's seed through SplitMix64's
/// finaliser. Stable across runs and platforms (unlike String.GetHashCode), and different modules of one expert get
/// independent masks.
let moduleSeed (expertSeed: uint64) (moduleName: string) : uint64 =
    let mutable h = 14695981039346656037UL
    for b in Encoding.UTF8.GetBytes moduleName do
        h <- (h ^^^ uint64 b) * 1099511628211UL
    let mutable z = h ^^^ (expertSeed + 0x9E3779B97F4A7C15UL)
    z <- (z ^^^ (z >>> 30)) * 0xBF58476D1CE4E5B9UL
    z <- (z ^^^ (z >>> 27)) * 0x94D049BB133111EBUL
    z ^^^ (z >>> 31)

let private checkRate (p: float) =
    if Double.IsNaN p || p < 0.0 || p >= 1.0 then invalidArg (nameof p) (sprintf "DARE drop rate must lie in [0, 1), got %g" p)

/// DARE on x with uniform draws taken from `generator` in flat order. Drawing a tensor chunk by chunk from one
/// generator gives the same draws as drawing it whole (CPU uniform sampling is serial), so a module can be processed
/// in row blocks.
let dareWith (p: float) (generator: torch.Generator) (x: Tensor) : Tensor =
    checkRate p
    Tensors.scoped (fun () ->
        if p = 0.0 then x.clone ()
        else
            let draws = torch.rand (x.shape, dtype = ScalarType.Float32, generator = generator)
            x.masked_fill(draws.lt (Scalar.op_Implicit p), Scalar.op_Implicit 0.0).div_(Scalar.op_Implicit (1.0 - p)))

/// Keeps each entry with probability 1−p (uniform draws from a generator seeded with `seed`) and divides the kept
/// entries by 1−p. The mask depends only on the seed and the shape, never on the values or on other experts.
let dare (p: float) (seed: uint64) (x: Tensor) : Tensor =
    checkRate p
    use generator = new torch.Generator(seed, torch.CPU)
    dareWith p generator x

/// DARE on every expert, each with its own seed.
let dareAll (p: float) (seeds: uint64 list) (xs: Tensor list) : Tensor list =
    if List.length seeds <> List.length xs then
        invalidArg (nameof seeds) (sprintf "%d seeds for %d experts" (List.length seeds) (List.length xs))
    List.map2 (dare p) seeds xs
