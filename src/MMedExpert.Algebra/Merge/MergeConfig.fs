namespace MMedExpert.Algebra.Merge

open System

/// The merge methods `mmx merge --method` offers.
type MergeMethod =
    | TaskArithmetic
    | Ties
    | Dare
    | DareTies
    | ConflictAware

/// Everything that decides a merge, besides the experts themselves.
type MergeConfig =
    { Method: MergeMethod
      /// Fraction of each expert's entries the magnitude trim keeps (ties, conflict_aware, and the consensus mask).
      Density: float
      /// Global scale λ of the merged task vector.
      Lambda: float
      /// DARE drop probability p (dare, dare_ties).
      DropRate: float
      /// conflict_aware: 0 = plain TIES, 1 = the full least-squares conflict scale.
      ConflictStrength: float
      /// When ≥ 1: keep only entries that at least this many experts keep in their top-Density magnitudes (0 = off).
      ConsensusMinExperts: int
      /// Per-expert weights, in expert order (empty = all 1).
      Weights: float[]
      /// Per-expert DARE seeds, in expert order; they travel with the expert, so reordering the experts (with their
      /// seeds) gives the same merge.
      Seeds: uint64[] }

module MergeMethod =
    let private table =
        [ "task_arithmetic", TaskArithmetic
          "ties", Ties
          "dare", Dare
          "dare_ties", DareTies
          "conflict_aware", ConflictAware ]

    /// The CLI names of the methods.
    let names : string[] = table |> List.map fst |> Array.ofList

    let name (m: MergeMethod) : string = table |> List.find (fun (_, x) -> x = m) |> fst

    /// Parses a CLI name; throws ArgumentException listing the valid names.
    let parse (text: string) : MergeMethod =
        match table |> List.tryFind (fun (n, _) -> n = text.Trim().ToLowerInvariant().Replace('-', '_')) with
        | Some(_, m) -> m
        | None -> invalidArg (nameof text) (sprintf "unknown merge method '%s' (expected one of %s)" text (String.Join(", ", names)))

    /// Whether the method draws DARE masks (and so needs one seed per expert).
    let usesDare (m: MergeMethod) = m = Dare || m = DareTies

module MergeConfig =
    /// TIES paper defaults: keep the top 20 %, λ = 1; DARE drops 90 %; full conflict scale.
    let defaults =
        { Method = ConflictAware
          Density = 0.2
          Lambda = 1.0
          DropRate = 0.9
          ConflictStrength = 1.0
          ConsensusMinExperts = 0
          Weights = [||]
          Seeds = [||] }

    /// The problems with a config for `experts` experts, each naming the field; empty when valid.
    let problems (experts: int) (c: MergeConfig) : string list =
        [ if experts < 1 then yield "at least one expert is needed"
          if Double.IsNaN c.Density || c.Density < 0.0 || c.Density > 1.0 then
              yield sprintf "density must lie in [0, 1], got %g" c.Density
          if Double.IsNaN c.Lambda || Double.IsInfinity c.Lambda then yield sprintf "lambda must be finite, got %g" c.Lambda
          if Double.IsNaN c.DropRate || c.DropRate < 0.0 || c.DropRate >= 1.0 then
              yield sprintf "drop rate must lie in [0, 1), got %g" c.DropRate
          if Double.IsNaN c.ConflictStrength || c.ConflictStrength < 0.0 || c.ConflictStrength > 1.0 then
              yield sprintf "conflict strength must lie in [0, 1], got %g" c.ConflictStrength
          if c.ConsensusMinExperts < 0 || c.ConsensusMinExperts > experts then
              yield sprintf "consensus needs between 0 and %d experts, got %d" experts c.ConsensusMinExperts
          if c.Weights.Length <> 0 && c.Weights.Length <> experts then
              yield sprintf "%d weights given for %d experts" c.Weights.Length experts
          if c.Weights |> Array.exists (fun w -> Double.IsNaN w || Double.IsInfinity w) then yield "weights must be finite"
          if c.Method <> TaskArithmetic && c.Method <> Dare && c.Weights |> Array.exists (fun w -> w < 0.0) then
              yield "sign-electing methods need non-negative weights"
          if MergeMethod.usesDare c.Method && c.Seeds.Length <> experts then
              yield sprintf "%s needs one seed per expert: %d seeds for %d experts" (MergeMethod.name c.Method) c.Seeds.Length experts ]

    /// The per-expert weights as a list (all 1 when none were given).
    let weightsFor (experts: int) (c: MergeConfig) : float list =
        if c.Weights.Length = 0 then List.replicate experts 1.0 else List.ofArray c.Weights
