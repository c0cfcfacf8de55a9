using System.CommandLine;
using System.Diagnostics;
using MMedExpert.Core.IO;
using TorchSharp;

namespace MMedExpert.Cli.Commands.Bench;

/// <summary>
/// `mmx bench io`: safetensors load throughput against the raw sequential read of the same file, in the same run.
/// Both are measured warm (file in the page cache), best of N, so the ratio isolates the loader's own overhead.
/// </summary>
public static class IoBench
{
    public static Command Create()
    {
        var sizeGb = new Option<double>("--size-gb") { Description = "Size of the generated file in GB", DefaultValueFactory = _ => 1.0 };
        var dir = new Option<string?>("--dir") { Description = "Folder for the generated file (default: the system temp folder)" };
        var repeats = new Option<int>("--repeats") { Description = "Measurements per figure (best is reported)", DefaultValueFactory = _ => 3 };
        var json = new Option<bool>("--json") { Description = "Print one JSON object" };
        var cmd = new Command("io", "safetensors load GB/s vs raw sequential read GB/s of the same generated file");
        foreach (var o in new Option[] { sizeGb, dir, repeats, json }) cmd.Options.Add(o);
        cmd.SetAction(parse =>
        {
            CommandKit.ConfigureTorch(parse);
            // CreateTempSubdirectory takes a name prefix, not a path: a user folder gets its own unique subfolder.
            string folder = parse.GetValue(dir) is { } d
                ? Directory.CreateDirectory(Path.Combine(Path.GetFullPath(d), $"mmx-bench-io-{Guid.NewGuid():N}")).FullName
                : Directory.CreateTempSubdirectory("mmx-bench-io-").FullName;
            string file = Path.Combine(folder, "bench.safetensors");
            try
            {
                long bytes = (long)(parse.GetValue(sizeGb) * 1e9);
                Generate(file, bytes);
                long fileBytes = new FileInfo(file).Length;
                int n = Math.Max(1, parse.GetValue(repeats));
                double raw = Enumerable.Range(0, n).Select(_ => RawRead(file)).Min();
                double load = Enumerable.Range(0, n).Select(_ => Load(file, copy: false)).Min();
                double loadCopy = Enumerable.Range(0, n).Select(_ => Load(file, copy: true)).Min();
                var result = new
                {
                    file_bytes = fileBytes,
                    raw_read_gb_per_s = Math.Round(fileBytes / raw / 1e9, 3),
                    load_gb_per_s = Math.Round(fileBytes / load / 1e9, 3),
                    load_over_raw = Math.Round(raw / load, 3),
                    load_copy_gb_per_s = Math.Round(fileBytes / loadCopy / 1e9, 3),
                    load_copy_over_raw = Math.Round(raw / loadCopy, 3),
                    goal_load_over_raw = 0.7,
                    repeats = n,
                    note = "warm page cache; raw read = sequential FileStream reads into a reused 16 MiB buffer; " +
                           "load = open + every tensor created from the copy-on-write map + one read per 4 KiB page (so every page is mapped); " +
                           "load_copy = open + every tensor read into its own fresh memory",
                };
                if (parse.GetValue(json)) CommandKit.WriteJson(result);
                else Console.WriteLine($"raw read {result.raw_read_gb_per_s} GB/s, load {result.load_gb_per_s} GB/s, ratio {result.load_over_raw}");
                return 0;
            }
            finally { Directory.Delete(folder, recursive: true); }
        });
        return cmd;
    }

    /// <summary>A checkpoint-like file: bf16 and fp32 matrices of 4-64 MiB (shapes like a transformer's).</summary>
    static void Generate(string path, long targetBytes)
    {
        var tensors = new List<KeyValuePair<string, torch.Tensor>>();
        long total = 0;
        for (int i = 0; total < targetBytes; i++)
        {
            var t = i % 4 == 3 ? torch.randn(1024, 4096) : torch.randn(4096, 4096, dtype: torch.bfloat16);
            tensors.Add(new($"model.layers.{i / 4}.w{i % 4}.weight", t));
            total += t.numel() * t.ElementSize;
        }
        Safetensors.Save(path, tensors);
        foreach (var kv in tensors) kv.Value.Dispose();
    }

    static double RawRead(string path)
    {
        var buffer = new byte[16 << 20];
        var sw = Stopwatch.StartNew();
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 0);
        while (fs.Read(buffer, 0, buffer.Length) > 0) { }
        return sw.Elapsed.TotalSeconds;
    }

    static double Load(string path, bool copy)
    {
        var sw = Stopwatch.StartNew();
        using var file = SafetensorsFile.Open(path);
        var loaded = file.LoadAll(copy: copy).ToList();
        long checksum = 0;
        foreach (var (_, t) in loaded)
        {
            // Touch one byte per page so lazily mapped pages count: the tensors are usable, not just promised.
            var bytes = t.bytes;
            for (int i = 0; i < bytes.Length; i += 4096) checksum += bytes[i];
        }
        double seconds = sw.Elapsed.TotalSeconds;
        GC.KeepAlive(checksum);
        foreach (var (_, t) in loaded) t.Dispose();
        return seconds;
    }
}
