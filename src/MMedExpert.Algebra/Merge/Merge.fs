/// One entry point over all methods: merges one module's expert deltas as a MergeConfig says. The module is processed
/// in row blocks of about a million entries: the steps are elementwise once each expert's trim cut (a global top-k)
/// is known, DARE draws its masks block by block from one generator per expert, and the conflict scale adds up over
/// blocks. The result equals the whole-tensor compositions (Ties.ties, ConflictAware.conflictAware, ...) and keeps the
/// temporaries small and in cache.
module MMedExpert.Algebra.Merge.Merge

open TorchSharp

/// The merged delta of one module (λ and the consensus mask applied) and the conflict scale it was multiplied by
/// (1 for every method but conflict_aware).
type ModuleMerge = { Delta: Tensor; ConflictScale: float }

/// mergeModule with an explicit block height (rows of dimension 0 per block).
let mergeModuleInChunks (rowsPerChunk: int64) (config: MergeConfig) (moduleName: string) (deltas: Tensor list) : ModuleMerge =
    let n = List.length deltas
    match MergeConfig.problems n config with
    | [] -> ()
    | problems -> invalidArg (nameof config) (String.concat "; " problems)
    Tensors.requireNonEmpty (nameof deltas) deltas
    Tensors.requireSameShape deltas
    if rowsPerChunk < 1L then invalidArg (nameof rowsPerChunk) "needs at least one row per chunk"
    let weights = MergeConfig.weightsFor n config
    let experts = Array.ofList deltas
    let first = experts[0]
    use _scope = torch.NewDisposeScope()
    let needsCuts = config.Method = Ties || config.Method = ConflictAware || config.ConsensusMinExperts >= 1
    let cuts = if needsCuts then experts |> Array.map (Trim.cut config.Density) else [||]
    let generators =
        if MergeMethod.usesDare config.Method then
            config.Seeds |> Array.map (fun s -> new torch.Generator(Dare.moduleSeed s moduleName, torch.CPU))
        else [||]
    try
        let merged = torch.zeros_like first
        let tiesSeen = Array.zeroCreate<int64> n
        let mutable terms = ConflictAware.noTerms
        let rows = if first.dim () = 0L then 1L else first.shape[0]
        for start in 0L .. rowsPerChunk .. rows - 1L do
            use _block = torch.NewDisposeScope()
            let len = min rowsPerChunk (rows - start)
            let block (t: Tensor) = if t.dim () = 0L then t else t.narrow (0L, start, len)
            let xs = experts |> Array.map block |> List.ofArray
            let trimmed () =
                List.init n (fun i ->
                    let kept, seen = Trim.applyCut cuts[i] tiesSeen[i] xs[i]
                    tiesSeen[i] <- seen
                    kept)
            let dropped () = List.init n (fun i -> Dare.dareWith config.DropRate generators[i] xs[i])
            let trimmedNow = if needsCuts then Some(trimmed ()) else None
            let result =
                match config.Method with
                | TaskArithmetic -> TaskArithmetic.taskArithmetic weights xs
                | Dare -> TaskArithmetic.taskArithmetic weights (dropped ())
                | DareTies ->
                    let d = dropped ()
                    DisjointMean.disjointWeightedMean weights (Sign.electSignWeighted weights d) d
                | Ties ->
                    let t = trimmedNow.Value
                    DisjointMean.disjointWeightedMean weights (Sign.electSignWeighted weights t) t
                | ConflictAware ->
                    let t = trimmedNow.Value
                    let elected = Sign.electSignWeighted weights t
                    let m = DisjointMean.disjointWeightedMean weights elected t
                    terms <- ConflictAware.addTerms terms (ConflictAware.scaleTerms weights elected t m)
                    m
            let masked =
                if config.ConsensusMinExperts >= 1 then
                    let votes = torch.zeros (result.shape, dtype = ScalarType.Int32)
                    for t in trimmedNow.Value do
                        votes.add_ (t.ne(Scalar.op_Implicit 0.0).to_type ScalarType.Int32) |> ignore
                    Consensus.applyMask (votes.ge (Scalar.op_Implicit config.ConsensusMinExperts)) result
                else result
            (block merged).copy_ masked |> ignore
        let conflictScale =
            if config.Method = ConflictAware then ConflictAware.withStrength config.ConflictStrength (ConflictAware.scaleOf terms) else 1.0
        // Same operation order as the whole-tensor compositions: the conflict scale first, then λ.
        let scaled = if conflictScale = 1.0 then merged else merged.mul (Scalar.op_Implicit conflictScale)
        let delta = TaskArithmetic.scale config.Lambda scaled
        { Delta = delta.MoveToOuterDisposeScope(); ConflictScale = conflictScale }
    finally
        for g in generators do g.Dispose()

/// Merges the experts' task vectors of the module `moduleName` (the name only seeds DARE's masks).
let mergeModule (config: MergeConfig) (moduleName: string) (deltas: Tensor list) : ModuleMerge =
    match deltas with
    | [] -> invalidArg (nameof deltas) "needs at least one expert tensor"
    | first :: _ -> mergeModuleInChunks (Tensors.rowsPerChunk first.shape) config moduleName deltas
