/// One entry point over all methods: merges one module's expert deltas as a MergeConfig says.
module MMedExpert.Algebra.Merge.Merge

open TorchSharp

/// The merged delta of one module (λ and the consensus mask applied) and the conflict scale it was multiplied by
/// (1 for every method but conflict_aware).
type ModuleMerge = { Delta: Tensor; ConflictScale: float }

/// Merges the experts' task vectors of the module `moduleName` (the name only seeds DARE's masks).
let mergeModule (config: MergeConfig) (moduleName: string) (deltas: Tensor list) : ModuleMerge =
    let n = List.length deltas
    match MergeConfig.problems n config with
    | [] -> ()
    | problems -> invalidArg (nameof config) (String.concat "; " problems)
    Tensors.requireSameShape deltas
    let weights = MergeConfig.weightsFor n config
    let seeds () = config.Seeds |> Array.map (fun s -> Dare.moduleSeed s moduleName) |> List.ofArray
    use _scope = torch.NewDisposeScope()
    let merged, conflictScale =
        match config.Method with
        | TaskArithmetic -> TaskArithmetic.taskArithmetic weights deltas, 1.0
        | Ties -> Ties.ties config.Density weights deltas, 1.0
        | Dare -> DareLinear.dareLinear config.DropRate (seeds ()) weights deltas, 1.0
        | DareTies -> DareTies.dareTies config.DropRate (seeds ()) weights deltas, 1.0
        | ConflictAware ->
            let r = ConflictAware.conflictAware config.Density config.ConflictStrength weights deltas
            r.Delta, r.Scale
    let masked =
        if config.ConsensusMinExperts >= 1 then
            Consensus.applyMask (Consensus.magnitudeConsensus config.Density config.ConsensusMinExperts deltas) merged
        else merged
    let delta = TaskArithmetic.scale config.Lambda masked
    { Delta = delta.MoveToOuterDisposeScope(); ConflictScale = conflictScale }
