using MMedExpert.Core.Model;
using MMedExpert.Core.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MMedExpert.Core.Training;

/// <summary>Sizes of the <see cref="ToyCausalLm"/>.</summary>
public sealed record ToyCausalLmConfig(int Vocab = 64, int Hidden = 32, int Layers = 2, int Heads = 4, int KvHeads = 2, int Intermediate = 48)
{
    public int HeadDim => Hidden / Heads;
}

/// <summary>
/// A tiny decoder-only language model with Qwen2's module paths (<c>model.layers.N.self_attn.q_proj</c>, <c>mlp.gate_proj</c>,
/// <c>lm_head</c>, ...) and a small <c>visual.</c> branch with vision-tower names, every linear an
/// <see cref="AdaptableLinear"/>. It exercises the LoRA and training code (tests, <c>mmx bench lora --preset toy</c>)
/// without the real model: causal attention (grouped-query, no rotary), SwiGLU MLP, RMSNorm, next-token loss.
/// </summary>
public sealed class ToyCausalLm : nn.Module<Tensor, Tensor>
{
    public ToyDecoder model;
    public ToyVisual visual;
    public AdaptableLinear lm_head;
    public ToyCausalLmConfig Config { get; }

    /// <summary>A toy whose weights are a function of <paramref name="seed"/> alone (not of torch's default generator).</summary>
    public ToyCausalLm(ToyCausalLmConfig config, long seed = 0) : base(nameof(ToyCausalLm))
    {
        Config = config;
        model = new ToyDecoder(config);
        visual = new ToyVisual(config.Hidden);
        lm_head = new AdaptableLinear("lm_head", config.Hidden, config.Vocab, hasBias: false);
        RegisterComponents();
        Initialize(seed);
    }

    /// <summary>
    /// Redraws every weight from generators seeded by (seed, parameter name): matrices U(±1/sqrt(fan_in)) like
    /// nn.Linear, the embedding N(0, 1), biases U(±0.1), norm weights 1.
    /// </summary>
    void Initialize(long seed)
    {
        using var noGrad = no_grad();
        foreach (var (name, p) in named_parameters())
        {
            using var gen = new Generator((ulong)Seeds.Derive(seed, name), p.device);
            if (name.EndsWith("embed_tokens.weight", StringComparison.Ordinal))
                p.copy_(randn(p.shape, generator: gen));
            else if (p.dim() == 2)
            {
                double bound = 1 / Math.Sqrt(p.shape[1]);
                p.copy_(rand(p.shape, generator: gen).mul_(2 * bound).sub_(bound));
            }
            else if (name.EndsWith("bias", StringComparison.Ordinal))
                p.copy_(rand(p.shape, generator: gen).mul_(0.2).sub_(0.1));
            else
                p.fill_(1.0);
        }
    }

    /// <summary>Logits [batch, seq, vocab] for token ids [batch, seq].</summary>
    public override Tensor forward(Tensor ids) => lm_head.forward(model.forward(ids));

    /// <summary>Mean next-token cross-entropy of a batch of token ids [batch, seq].</summary>
    public Tensor Loss(Tensor ids)
    {
        using var scope = NewDisposeScope();
        var logits = forward(ids);
        long t = ids.shape[1];
        var predicted = logits.narrow(1, 0, t - 1).reshape(-1, Config.Vocab);
        var target = ids.narrow(1, 1, t - 1).reshape(-1);
        return nn.functional.cross_entropy(predicted, target).MoveToOuterDisposeScope();
    }
}

public sealed class ToyDecoder : nn.Module<Tensor, Tensor>
{
    public Embedding embed_tokens;
    public ModuleList<ToyBlock> layers;
    public Parameter norm;

    public ToyDecoder(ToyCausalLmConfig c) : base(nameof(ToyDecoder))
    {
        embed_tokens = nn.Embedding(c.Vocab, c.Hidden);
        layers = new ModuleList<ToyBlock>(Enumerable.Range(0, c.Layers).Select(_ => new ToyBlock(c)).ToArray());
        norm = new Parameter(ones(c.Hidden));
        RegisterComponents();
    }

    public override Tensor forward(Tensor ids)
    {
        using var scope = NewDisposeScope();
        var h = embed_tokens.forward(ids);
        foreach (var layer in layers) h = layer.forward(h);
        return Kernels.RmsNorm(h, norm, 1e-6).MoveToOuterDisposeScope();
    }
}

public sealed class ToyBlock : nn.Module<Tensor, Tensor>
{
    public Parameter input_layernorm, post_attention_layernorm;
    public ToyAttention self_attn;
    public ToyMlp mlp;

    public ToyBlock(ToyCausalLmConfig c) : base(nameof(ToyBlock))
    {
        input_layernorm = new Parameter(ones(c.Hidden));
        post_attention_layernorm = new Parameter(ones(c.Hidden));
        self_attn = new ToyAttention(c);
        mlp = new ToyMlp(c.Hidden, c.Intermediate);
        RegisterComponents();
    }

    public override Tensor forward(Tensor h)
    {
        using var scope = NewDisposeScope();
        h = h + self_attn.forward(Kernels.RmsNorm(h, input_layernorm, 1e-6));
        h = h + mlp.forward(Kernels.RmsNorm(h, post_attention_layernorm, 1e-6));
        return h.MoveToOuterDisposeScope();
    }
}

public sealed class ToyAttention : nn.Module<Tensor, Tensor>
{
    public AdaptableLinear q_proj, k_proj, v_proj, o_proj;
    readonly ToyCausalLmConfig c;

    public ToyAttention(ToyCausalLmConfig c) : base(nameof(ToyAttention))
    {
        this.c = c;
        q_proj = new AdaptableLinear("q_proj", c.Hidden, c.Heads * c.HeadDim, hasBias: true);
        k_proj = new AdaptableLinear("k_proj", c.Hidden, c.KvHeads * c.HeadDim, hasBias: true);
        v_proj = new AdaptableLinear("v_proj", c.Hidden, c.KvHeads * c.HeadDim, hasBias: true);
        o_proj = new AdaptableLinear("o_proj", c.Heads * c.HeadDim, c.Hidden, hasBias: false);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], t = x.shape[1];
        var q = q_proj.forward(x).view(b, t, c.Heads, c.HeadDim).transpose(1, 2);
        var k = k_proj.forward(x).view(b, t, c.KvHeads, c.HeadDim).transpose(1, 2);
        var v = v_proj.forward(x).view(b, t, c.KvHeads, c.HeadDim).transpose(1, 2);
        var o = Kernels.Attention(q, k, v, causal: true).transpose(1, 2).reshape(b, t, c.Heads * c.HeadDim);
        return o_proj.forward(o).MoveToOuterDisposeScope();
    }
}

public sealed class ToyMlp : nn.Module<Tensor, Tensor>
{
    public AdaptableLinear gate_proj, up_proj, down_proj;

    public ToyMlp(int hidden, int intermediate) : base(nameof(ToyMlp))
    {
        gate_proj = new AdaptableLinear("gate_proj", hidden, intermediate, hasBias: false);
        up_proj = new AdaptableLinear("up_proj", hidden, intermediate, hasBias: false);
        down_proj = new AdaptableLinear("down_proj", intermediate, hidden, hasBias: false);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return down_proj.forward(Kernels.SiluMul(gate_proj.forward(x), up_proj.forward(x))).MoveToOuterDisposeScope();
    }
}

/// <summary>A stand-in for the vision tower: one block with Qwen2.5-VL's vision names (<c>visual.blocks.0.attn.qkv</c>, <c>mlp.gate_proj</c>, ...).</summary>
public sealed class ToyVisual : nn.Module<Tensor, Tensor>
{
    public ModuleList<ToyVisionBlock> blocks;

    public ToyVisual(int hidden) : base(nameof(ToyVisual))
    {
        blocks = new ModuleList<ToyVisionBlock>(new ToyVisionBlock(hidden));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        foreach (var b in blocks) x = b.forward(x);
        return x;
    }
}

public sealed class ToyVisionBlock : nn.Module<Tensor, Tensor>
{
    public ToyVisionAttention attn;
    public ToyMlp mlp;

    public ToyVisionBlock(int hidden) : base(nameof(ToyVisionBlock))
    {
        attn = new ToyVisionAttention(hidden);
        mlp = new ToyMlp(hidden, hidden * 2);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return (x + attn.forward(x) + mlp.forward(x)).MoveToOuterDisposeScope();
    }
}

public sealed class ToyVisionAttention : nn.Module<Tensor, Tensor>
{
    public AdaptableLinear qkv, proj;

    public ToyVisionAttention(int hidden) : base(nameof(ToyVisionAttention))
    {
        qkv = new AdaptableLinear("qkv", hidden, 3 * hidden, hasBias: true);
        proj = new AdaptableLinear("proj", hidden, hidden, hasBias: true);
        RegisterComponents();
    }

    /// <summary>Not real attention: the toy only needs the vision layers to exist and be differentiable.</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var parts = qkv.forward(x).chunk(3, -1);
        return proj.forward(parts[0] * parts[1].sigmoid() + parts[2]).MoveToOuterDisposeScope();
    }
}
