using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using MMedExpert.Core.Native;
using TorchSharp;

namespace MMedExpert.Core.Runtime;

/// <summary>Process-wide torch settings (threads, device) and a description of the loaded native backend.</summary>
public static class TorchRuntime
{
    /// <summary>Environment variable that overrides the thread count (the CLI's --threads sets it too).</summary>
    public const string ThreadsVariable = "MMX_THREADS";

    /// <summary>All cores by default; MMX_THREADS or an explicit count overrides.</summary>
    public static int ConfigureThreads(int? threads = null)
    {
        int n = threads ?? (int.TryParse(Environment.GetEnvironmentVariable(ThreadsVariable), out var env) && env > 0 ? env : Environment.ProcessorCount);
        torch.set_num_threads(n);
        return n;
    }

    /// <summary>The device to run on: "cuda" when the CUDA backend is built in and a GPU is visible, else "cpu".</summary>
    public static torch.Device DefaultDevice => torch.cuda.is_available() ? torch.CUDA : torch.CPU;

    public static string Backend =>
#if TORCH_CUDA
        "cuda";
#else
        "cpu";
#endif

    /// <summary>Absolute path of the loaded libLibTorchSharp (read from /proc/self/maps on Linux).</summary>
    public static string? LoadedNativeLibrary(string name = "libLibTorchSharp")
    {
        _ = torch.ones(1); // force the native load
        if (!File.Exists("/proc/self/maps")) return null;
        foreach (var line in File.ReadLines("/proc/self/maps"))
        {
            int slash = line.IndexOf('/');
            if (slash >= 0 && line.Contains(name)) return line[slash..];
        }
        return null;
    }

    public static IReadOnlyDictionary<string, string> Describe()
    {
        var native = LoadedNativeLibrary();
        string weak = "n/a";
        if (native != null && File.Exists(native))
        {
            var need = ElfWeakVersion.ReadVersionNeeds(native).FirstOrDefault(n => n.Version == "GLIBCXX_3.4.32");
            weak = need == null ? "not required" : need.IsWeak ? "marked weak (patched by the build)" : "required (not patched)";
        }
        return new Dictionary<string, string>
        {
            ["torchsharp"] = typeof(torch).Assembly.GetName().Version?.ToString() ?? "?",
            ["libtorch"] = torch.__version__,
            ["backend"] = Backend,
            ["device"] = DefaultDevice.ToString(),
            ["cuda available"] = torch.cuda.is_available().ToString().ToLowerInvariant(),
            ["threads"] = torch.get_num_threads().ToString(),
            ["cores"] = Environment.ProcessorCount.ToString(),
            ["cpu features"] = string.Join(" ", CpuFeatures()),
            ["bf16 matmul"] = CpuFeatures().Any(f => f is "avx512_bf16" or "amx_bf16") ? "native (avx512_bf16/amx_bf16)" : "converted to fp32 by libtorch",
            ["native library"] = native ?? "?",
            ["libtorch_cpu"] = LoadedNativeLibrary("libtorch_cpu") ?? "?",
            ["GLIBCXX_3.4.32"] = weak,
            ["os"] = RuntimeInformation.OSDescription,
            [".NET"] = RuntimeInformation.FrameworkDescription,
        };
    }

    /// <summary>The CPU features that matter for matmul speed, from /proc/cpuinfo (x86 Linux) or the .NET intrinsics.</summary>
    public static IReadOnlyList<string> CpuFeatures()
    {
        string[] wanted = { "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile" };
        var line = File.Exists("/proc/cpuinfo") ? File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("flags")) : null;
        if (line != null)
        {
            var flags = new HashSet<string>(line[(line.IndexOf(':') + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries));
            return wanted.Where(flags.Contains).ToList();
        }
        var list = new List<string>();
        if (Avx2.IsSupported) list.Add("avx2");
        if (Fma.IsSupported) list.Add("fma");
        if (Avx512F.IsSupported) list.Add("avx512f");
        return list;
    }
}
