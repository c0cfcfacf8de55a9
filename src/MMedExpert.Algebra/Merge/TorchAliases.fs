/// Short names for the TorchSharp types the merge code uses. (`open type torch` is avoided on purpose: it would shadow
/// F#'s float/int/int64 conversions with torch's dtype constants.)
[<AutoOpen>]
module MMedExpert.Algebra.Merge.TorchAliases

type Tensor = TorchSharp.torch.Tensor
type ScalarType = TorchSharp.torch.ScalarType
