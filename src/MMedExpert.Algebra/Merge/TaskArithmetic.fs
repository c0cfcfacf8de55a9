/// Task arithmetic (Ilharco et al. 2023, "Editing Models with Task Arithmetic"): the merged update is a weighted sum of
/// the experts' task vectors.
module MMedExpert.Algebra.Merge.TaskArithmetic

open TorchSharp

/// λ·x as a new tensor.
let scale (lambda: float) (x: Tensor) : Tensor = Tensors.scoped (fun () -> x.mul (Scalar.op_Implicit lambda))

/// Σ λᵢ·xᵢ.
let taskArithmetic (lambdas: float list) (xs: Tensor list) : Tensor = Tensors.weightedSum lambdas xs
