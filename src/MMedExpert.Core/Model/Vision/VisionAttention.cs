using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MMedExpert.Core.Model.Vision;

/// <summary>
/// Multi-head self-attention of a vision block over a flat sequence of patches that holds several independent
/// segments (images, or windows of images): a patch attends only to the patches of its own segment, given as
/// cumulative boundaries (cu_seqlens). Fused qkv projection with bias, output projection with bias, 2D rotary
/// embedding on q and k applied in fp32 (as the reference does).
/// State dict: <c>qkv.weight</c> [3·hidden, hidden], <c>qkv.bias</c>, <c>proj.weight</c> [hidden, hidden], <c>proj.bias</c>.
/// </summary>
public sealed class VisionAttention : nn.Module
{
    private readonly AdaptableLinear qkv;
    private readonly AdaptableLinear proj;
    private readonly long numHeads;
    private readonly long headDim;

    public VisionAttention(string name, VisionConfig config) : base(name)
    {
        numHeads = config.NumHeads;
        headDim = config.HeadDim;
        qkv = new AdaptableLinear("qkv", config.HiddenSize, 3L * config.HiddenSize, hasBias: true);
        proj = new AdaptableLinear("proj", config.HiddenSize, config.HiddenSize, hasBias: true);
        RegisterComponents();
    }

    /// <param name="hidden">[N, hidden]</param>
    /// <param name="boundaries">cumulative segment ends, starting at 0 and ending at N</param>
    /// <param name="cos">[N, headDim] fp32</param>
    /// <param name="sin">[N, headDim] fp32</param>
    public Tensor forward(Tensor hidden, long[] boundaries, Tensor cos, Tensor sin)
    {
        using var scope = NewDisposeScope();
        long n = hidden.shape[0];
        var parts = qkv.forward(hidden).view(n, 3, numHeads, headDim).unbind(1); // 3 × [N, heads, headDim]
        var c = cos.unsqueeze(1);
        var s = sin.unsqueeze(1);
        var q = Kernels.ApplyRotary(parts[0].to_type(ScalarType.Float32), c, s).to_type(hidden.dtype);
        var k = Kernels.ApplyRotary(parts[1].to_type(ScalarType.Float32), c, s).to_type(hidden.dtype);
        var v = parts[2];

        var outputs = new List<Tensor>();
        // Consecutive segments of equal length (the interior windows of an image) run as one batch.
        for (int i = 0; i + 1 < boundaries.Length;)
        {
            long start = boundaries[i], length = boundaries[i + 1] - start;
            int j = i + 1;
            while (j + 1 < boundaries.Length && boundaries[j + 1] - boundaries[j] == length) j++;
            long count = j - i;
            if (length > 0)
            {
                Tensor Batch(Tensor x) => x.narrow(0, start, count * length).view(count, length, numHeads, headDim).transpose(1, 2);
                var o = Kernels.Attention(Batch(q), Batch(k), Batch(v)); // [count, heads, length, headDim]
                outputs.Add(o.transpose(1, 2).reshape(count * length, numHeads * headDim));
            }
            i = j;
        }
        var attended = outputs.Count == 1 ? outputs[0] : cat(outputs, 0);
        return proj.forward(attended).MoveToOuterDisposeScope();
    }
}
