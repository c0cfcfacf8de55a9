using MMedExpert.Core.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace MMedExpert.Core.Lora;

/// <summary>
/// Computes a new adapter's factors from the base weight W [out, in] (facts from PEFT's lora/layer.py: reset_lora_parameters,
/// pissa_init, olora_init). Random draws use a generator seeded from (seed, module path), so a module's init does not
/// depend on which other modules exist or in which order they are visited.
/// </summary>
public static class LoraInitializer
{
    public sealed record Factors(Tensor A, Tensor B, Tensor? InitialA, Tensor? InitialB);

    public static Factors Create(LoraConfig config, Tensor weight, string modulePath, long seed)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        long outF = weight.shape[0], inF = weight.shape[1];
        int r = config.R;
        var device = weight.device;
        using var gen = new Generator((ulong)Seeds.Derive(seed, modulePath), device);
        Tensor a, b;
        Tensor? a0 = null, b0 = null;
        switch (config.Init)
        {
            case LoraInit.Kaiming:
                a = KaimingUniform(r, inF, gen, device);
                b = zeros(outF, r, device: device);
                break;
            case LoraInit.Gaussian:
                a = randn(r, inF, generator: gen, device: device).mul_(1.0 / r);
                b = zeros(outF, r, device: device);
                break;
            case LoraInit.PiSSA:
            {
                RequireRank(r, outF, inF, modulePath, "PiSSA");
                var w = weight.to_type(ScalarType.Float32);
                var (u, s, vh) = linalg.svd(w, fullMatrices: false);
                // Divide the singular values by the scale so that scale·B·A reproduces the principal part exactly.
                var sqrtS = s.narrow(0, 0, r).div(config.Scale).sqrt_();
                a = vh.narrow(0, 0, r).mul(sqrtS.unsqueeze(1));
                b = u.narrow(1, 0, r).mul(sqrtS.unsqueeze(0));
                (a0, b0) = (a.clone(), b.clone());
                break;
            }
            case LoraInit.OLoRA:
            {
                RequireRank(r, outF, inF, modulePath, "OLoRA");
                var w = weight.to_type(ScalarType.Float32);
                var (q, rr) = linalg.qr(w);
                a = rr.narrow(0, 0, r).contiguous();
                b = q.narrow(1, 0, r).contiguous();
                (a0, b0) = (a.clone(), b.clone());
                break;
            }
            case LoraInit.Random:
                a = KaimingUniform(r, inF, gen, device);
                b = KaimingUniform(outF, r, gen, device);
                (a0, b0) = (a.clone(), b.clone());
                break;
            default:
                throw new LoraException($"unsupported LoRA initialization {config.Init}");
        }
        var result = new Factors(a.contiguous(), b.contiguous(), a0, b0);
        result.A.MoveToOuterDisposeScope();
        result.B.MoveToOuterDisposeScope();
        result.InitialA?.MoveToOuterDisposeScope();
        result.InitialB?.MoveToOuterDisposeScope();
        return result;
    }

    /// <summary>nn.Linear's default: Kaiming-uniform with a = sqrt(5), i.e. U(−1/sqrt(fan_in), 1/sqrt(fan_in)).</summary>
    static Tensor KaimingUniform(long rows, long fanIn, Generator gen, Device device)
    {
        double bound = 1 / Math.Sqrt(fanIn);
        return rand(rows, fanIn, generator: gen, device: device).mul_(2 * bound).sub_(bound);
    }

    static void RequireRank(int r, long outF, long inF, string path, string kind)
    {
        if (r > Math.Min(outF, inF))
            throw new LoraException($"{kind} initialization of '{path}': r = {r} exceeds min(out, in) = {Math.Min(outF, inF)}");
    }
}
