/// TIES step 2: elect one sign per entry, and the sign-consensus mask of the experts that agree with it.
module MMedExpert.Algebra.Merge.Sign

open TorchSharp

/// The sign (−1, 0, +1) of the weighted summed mass Σ wᵢ·xᵢ per entry: the direction that carries the most total
/// magnitude wins, so one large update outvotes several tiny opposite ones.
let electSignWeighted (weights: float list) (xs: Tensor list) : Tensor =
    Tensors.scoped (fun () -> (Tensors.weightedSum weights xs).sign ())

/// electSignWeighted with all weights 1.
let electSign (xs: Tensor list) : Tensor = electSignWeighted (List.replicate (List.length xs) 1.0) xs

/// Sign-consensus mask of one expert: true where the expert is nonzero and has the elected sign. Where the elected
/// sign is 0 (the mass cancels exactly) no expert agrees. With elected ∈ {−1, 0, +1} that is exactly x·elected > 0.
let signConsensus (elected: Tensor) (x: Tensor) : Tensor =
    Tensors.scoped (fun () -> x.mul(elected).gt (Scalar.op_Implicit 0.0))
