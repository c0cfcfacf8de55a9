namespace MMedExpert.Algebra.Advantages

/// Options of GRPO's group normalisation (r − mean) / (std + Epsilon).
type GrpoOptions =
    { /// Added to the std; in reward units. TRL's default is 1e-4; 0 makes the estimator exactly affine-invariant.
      Epsilon: float
      /// Sample (n − 1, as torch.std / TRL) or population (n) standard deviation.
      Std: StdKind }

    static member Default = { Epsilon = 1e-4; Std = Sample }

/// Options of REINFORCE++'s batch-level normalisation.
type ReinforcePlusPlusOptions =
    { /// Subtract each group's mean before the batch normalisation ("REINFORCE++-baseline", the variant meant for
      /// several completions per prompt); false = plain REINFORCE++ (batch mean only).
      GroupBaseline: bool
      Epsilon: float
      Std: StdKind }

    static member Default = { GroupBaseline = true; Epsilon = 1e-4; Std = Sample }

/// The standard estimators, each a few lines over `Advantage` combinators.
module Estimators =

    /// GRPO (DeepSeekMath): A_i = (r_i − mean r) / (std r + ε).
    let grpo (options: GrpoOptions) : float[] -> float[] =
        Advantage.normalize options.Std options.Epsilon

    /// Dr. GRPO (Liu et al. 2025, "GRPO done right"): A_i = r_i − mean r, no std division (which biases towards
    /// too-easy and too-hard prompts). Its other half, the constant loss normaliser, belongs to the trainer.
    let drGrpo : float[] -> float[] =
        Advantage.center

    /// RLOO (Ahmadian et al. 2024): A_i = r_i − mean_{j≠i} r_j, which equals G/(G − 1) · Dr. GRPO's advantage.
    let rloo : float[] -> float[] =
        Advantage.baseline Advantage.leaveOneOutMean

    /// REINFORCE++ (Hu 2025): advantages normalised over the whole batch of groups, optionally after a per-group baseline.
    let reinforcePlusPlus (options: ReinforcePlusPlusOptions) : float[][] -> float[][] =
        let batchNormalize = Advantage.acrossBatch (Advantage.normalize options.Std options.Epsilon)
        if options.GroupBaseline then Advantage.perGroup Advantage.center >> batchNormalize
        else batchNormalize

    /// Multi-reward normalise-then-sum: each reward k normalised within the group by `normalizeEach`, then
    /// Σ_k weights[k] · normalised_k. `rewards[k][i]` is reward k of completion i.
    let multiReward (normalizeEach: float[] -> float[]) (weights: float[]) (rewards: float[][]) : float[] =
        Advantage.combine weights (rewards |> Array.map normalizeEach)

    /// The columns of a [completion, reward] matrix, as `multiReward` takes them.
    let columns (rewards: float[,]) : float[][] =
        Array.init (Array2D.length2 rewards) (fun k -> rewards[*, k])

    /// `multiReward` over a [completion, reward] matrix.
    let multiRewardMatrix (normalizeEach: float[] -> float[]) (weights: float[]) (rewards: float[,]) : float[] =
        if Array2D.length2 rewards <> weights.Length then
            invalidArg "weights" (sprintf "%d weights for a reward matrix with %d columns" weights.Length (Array2D.length2 rewards))
        if Array2D.length1 rewards = 0 then [||]
        else multiReward normalizeEach weights (columns rewards)
