using MMedExpert.Core.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MMedExpert.Core.Lora;

/// <summary>
/// One adapter on one linear layer: trainable A (r×in, PEFT's <c>lora_A.weight</c>) and B (out×r, <c>lora_B.weight</c>),
/// and, for the base-changing initializations, the frozen initial factors A₀, B₀.
/// <para>
/// Its weight change is ΔW = scale·(B·A − B₀·A₀). PiSSA/OLoRA in PEFT overwrite the base weight with the residual
/// W − scale·B₀A₀ and add scale·B·A; here the base weight is never touched and the residual is applied as the frozen
/// term instead. Same function, same gradients for A and B, but several experts with different base-changing inits
/// share one base, "no adapter active" is exactly the original base, and ΔW is already a
/// delta from the original base (saved as PEFT's rank-2r conversion).
/// </para>
/// Factors are float32 on the base weight's device, whatever the base dtype (PEFT's autocast_adapter_dtype).
/// </summary>
public sealed class LoraWeights : IDisposable
{
    public string AdapterName { get; }
    public string ModulePath { get; }
    public Parameter A { get; }
    public Parameter B { get; }
    /// <summary>Frozen initial factors of a base-changing init (null for B₀ = 0 inits and for loaded adapters).</summary>
    public Tensor? InitialA { get; }
    public Tensor? InitialB { get; }
    public double Scale { get; }
    public double Dropout { get; }
    public int Rank => (int)A.shape[0];

    /// <summary>Set while merged into the base weight; then the layer skips this adapter in its forward.</summary>
    public bool Merged { get; internal set; }
    /// <summary>Copy of the base weight before merging, kept only for low-precision weights (exact unmerge).</summary>
    internal Tensor? PreMergeWeight { get; set; }

    public LoraWeights(string adapterName, string modulePath, Tensor a, Tensor b, Tensor? initialA, Tensor? initialB, double scale, double dropout)
    {
        if (a.dim() != 2 || b.dim() != 2 || b.shape[1] != a.shape[0])
            throw new LoraException($"adapter '{adapterName}' module '{modulePath}': lora_A {Shape(a)} and lora_B {Shape(b)} do not form a low-rank pair");
        if ((initialA is null) != (initialB is null))
            throw new LoraException($"adapter '{adapterName}' module '{modulePath}': initial factors must be given together");
        AdapterName = adapterName;
        ModulePath = modulePath;
        // Own copies, detached from any dispose scope the caller may have open: they live as long as the adapter.
        A = (Parameter)new Parameter(Float32Copy(a), requires_grad: false).DetachFromDisposeScope();
        B = (Parameter)new Parameter(Float32Copy(b), requires_grad: false).DetachFromDisposeScope();
        InitialA = initialA is null ? null : Float32Copy(initialA).DetachFromDisposeScope();
        InitialB = initialB is null ? null : Float32Copy(initialB).DetachFromDisposeScope();
        Scale = scale;
        Dropout = dropout;
    }

    static Tensor Float32Copy(Tensor t)
    {
        using var noGrad = no_grad();
        return t.detach().to_type(ScalarType.Float32, copy: true).contiguous();
    }

    internal static string Shape(Tensor t) => "[" + string.Join(", ", t.shape) + "]";

    /// <summary>The adapter's part of the layer output: scale·(dropout(x)·Aᵀ)·Bᵀ − scale·(x·A₀ᵀ)·B₀ᵀ.</summary>
    public Tensor Output(Tensor input, bool training)
    {
        var x = input.dtype == ScalarType.Float32 ? input : input.to_type(ScalarType.Float32);
        // Dropout belongs to the trainable path only: the frozen term stands for the (residual) base weight.
        var h = training && Dropout > 0 ? ApplyDropout(x) : x;
        var y = nn.functional.linear(nn.functional.linear(h, A) * Scale, B);
        if (InitialA is not null)
            // Computed exactly like the trainable term, so at initialization the two cancel to exactly zero.
            y = y - nn.functional.linear(nn.functional.linear(x, InitialA) * Scale, InitialB!);
        return y;
    }

    /// <summary>
    /// Inverted dropout. Inside a training step the mask comes from the step's own generator (<see cref="StepRandom"/>),
    /// so a resumed run draws the same masks; elsewhere from torch's default generator.
    /// </summary>
    Tensor ApplyDropout(Tensor x)
    {
        var gen = StepRandom.For(x.device);
        if (gen is null) return nn.functional.dropout(x, Dropout, training: true);
        using var keep = rand(x.shape, dtype: x.dtype, device: x.device, generator: gen).ge_(Dropout);
        return x * keep * (1.0 / (1.0 - Dropout));
    }

    /// <summary>ΔW = scale·(B·A − B₀·A₀), float32, [out, in].</summary>
    public Tensor Delta()
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var d = B.matmul(A).mul_(Scale);
        if (InitialA is not null) d.sub_(InitialB!.matmul(InitialA).mul_(Scale));
        return d.MoveToOuterDisposeScope();
    }

    public void Dispose()
    {
        A.Dispose();
        B.Dispose();
        InitialA?.Dispose();
        InitialB?.Dispose();
        PreMergeWeight?.Dispose();
    }
}
