using TorchSharp;
using static TorchSharp.torch;

namespace MMedExpert.Core.Model.Text;

/// <summary>
/// M-RoPE: rotary position embedding with three position streams (temporal, height, width). The head dimension's
/// frequency pairs are split by <c>mrope_section</c> (e.g. [16, 24, 24] of 64 pairs): the first 16 frequencies rotate by the
/// temporal position, the next 24 by the height position, the last 24 by the width position. As in the reference, cos/sin are
/// built over the doubled frequencies (cat(freqs, freqs)), so the same section pattern repeats in both halves of the head
/// dimension. For text all three positions are equal and this is ordinary 1D RoPE.
/// </summary>
public sealed class MultimodalRotaryEmbedding
{
    readonly Tensor invFreqFull;   // [head_dim]: inverse frequencies repeated for both halves, fp32
    readonly Tensor sectionOfDim;  // [head_dim]: which position stream (0 t, 1 h, 2 w) drives each rotary dimension

    public MultimodalRotaryEmbedding(int headDim, double theta, IReadOnlyList<int> mropeSection)
    {
        int half = headDim / 2;
        // inv_freq = 1 / theta^(2i/d), computed in fp32 as the reference does.
        using var exponent = arange(0, headDim, 2, dtype: ScalarType.Int64).to_type(ScalarType.Float32).div_(headDim);
        using var thetaT = tensor((float)theta);
        using var denom = pow(thetaT, exponent);
        using var invFreq = denom.reciprocal();
        invFreqFull = cat(new[] { invFreq, invFreq }, 0).DetachFromDisposeScope();

        var section = new long[headDim];
        for (int j = 0; j < half; j++)
        {
            int s = j < mropeSection[0] ? 0 : j < mropeSection[0] + mropeSection[1] ? 1 : 2;
            section[j] = s;
            section[j + half] = s;
        }
        sectionOfDim = tensor(section).DetachFromDisposeScope();
    }

    /// <summary>cos and sin of shape [batch, 1, seq, head_dim] in <paramref name="dtype"/> from position ids [3, batch, seq].</summary>
    public (Tensor Cos, Tensor Sin) Compute(Tensor positionIds, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var device = positionIds.device;
        // [3, b, s] → [b, s, 3] → pick, per rotary dimension, the stream that drives it → [b, s, head_dim]
        var perDim = positionIds.permute(1, 2, 0).to_type(ScalarType.Float32).index_select(2, sectionOfDim.to(device));
        var angles = perDim.mul_(invFreqFull.to(device));
        var cos = angles.cos().to_type(dtype).unsqueeze(1);
        var sin = angles.sin_().to_type(dtype).unsqueeze(1);
        return (cos.MoveToOuterDisposeScope(), sin.MoveToOuterDisposeScope());
    }
}
