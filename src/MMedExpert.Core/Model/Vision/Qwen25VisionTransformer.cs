using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MMedExpert.Core.Model.Vision;

/// <summary>
/// STAND-IN for the Qwen2.5-VL vision tower, written on the text-model branch only so the full model compiles and its
/// tests run before the vision branch lands; the vision branch owns this file and replaces it. It keeps the real
/// interface and the real patch embedding + 2×2 patch merger (so shapes and checkpoint names of those parts agree),
/// but has NO transformer blocks.
/// forward(pixelValues [N, 1176], gridThw [images, 3] int64) → [N/4, out_hidden_size].
/// </summary>
public sealed class Qwen25VisionTransformer : nn.Module<Tensor, Tensor, Tensor>
{
    public readonly PatchEmbed patch_embed;
    public readonly PatchMerger merger;
    readonly VisionConfig cfg;

    public Qwen25VisionTransformer(string name, VisionConfig cfg) : base(name)
    {
        this.cfg = cfg;
        patch_embed = new PatchEmbed(cfg);
        merger = new PatchMerger(cfg);
        RegisterComponents();
    }

    public override Tensor forward(Tensor pixelValues, Tensor gridThw)
    {
        using var scope = NewDisposeScope();
        var h = patch_embed.forward(pixelValues);
        return merger.forward(h).MoveToOuterDisposeScope();
    }

    public sealed class PatchEmbed : nn.Module<Tensor, Tensor>
    {
        public readonly Conv3d proj;
        readonly VisionConfig cfg;

        public PatchEmbed(VisionConfig cfg) : base("patch_embed")
        {
            this.cfg = cfg;
            var k = ((long)cfg.TemporalPatchSize, (long)cfg.PatchSize, (long)cfg.PatchSize);
            proj = nn.Conv3d(cfg.InChannels, cfg.HiddenSize, k, stride: k, bias: false);
            RegisterComponents();
        }

        public override Tensor forward(Tensor x)
        {
            // A Conv3d whose stride equals its kernel over one patch is a matmul with the flattened kernel.
            using var w = proj.weight!.view(cfg.HiddenSize, -1);
            return nn.functional.linear(x.to_type(w.dtype), w);
        }
    }

    public sealed class PatchMerger : nn.Module<Tensor, Tensor>
    {
        public readonly RmsNormModule ln_q;
        public readonly Sequential mlp;
        readonly long merged;

        public PatchMerger(VisionConfig cfg) : base("merger")
        {
            merged = (long)cfg.HiddenSize * cfg.SpatialMergeSize * cfg.SpatialMergeSize;
            ln_q = new RmsNormModule(cfg.HiddenSize);
            mlp = nn.Sequential(("0", nn.Linear(merged, merged)), ("1", nn.GELU()), ("2", nn.Linear(merged, cfg.OutHiddenSize)));
            RegisterComponents();
        }

        public override Tensor forward(Tensor x)
        {
            using var scope = NewDisposeScope();
            return mlp.forward(ln_q.forward(x).view(-1, merged)).MoveToOuterDisposeScope();
        }
    }

    public sealed class RmsNormModule : nn.Module<Tensor, Tensor>
    {
        public readonly Parameter weight;
        public RmsNormModule(long size) : base("ln_q")
        {
            weight = nn.Parameter(ones(size));
            RegisterComponents();
        }
        public override Tensor forward(Tensor x) => Kernels.RmsNorm(x, weight, 1e-6);
    }
}
