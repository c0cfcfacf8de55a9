using Microsoft.Win32.SafeHandles;
using TorchSharp;

namespace MMedExpert.Core.IO;

/// <summary>
/// A safetensors file opened for reading: only the header is read and validated on open. Tensors are created on
/// demand over a copy-on-write memory map of the file (no copy, see <see cref="MappedTensors"/>), or, with
/// <c>copy: true</c>, read straight into their own memory.
/// </summary>
public sealed class SafetensorsFile : IDisposable
{
    readonly SafeFileHandle handle;
    MappedTensors? mapping;
    readonly Dictionary<string, SafetensorsEntry> byName;
    readonly long dataStart;

    public string Path { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; }
    /// <summary>Tensor entries in file order.</summary>
    public IReadOnlyList<SafetensorsEntry> Entries { get; }
    public IEnumerable<string> Names => Entries.Select(e => e.Name);
    public long DataBytes => Entries.Sum(e => e.ByteCount);

    SafetensorsFile(string path, SafeFileHandle handle, List<SafetensorsEntry> entries, Dictionary<string, string> metadata, long dataStart)
    {
        Path = path;
        this.handle = handle;
        this.dataStart = dataStart;
        Metadata = metadata;
        Entries = entries.OrderBy(e => e.Begin).ToList();
        byName = entries.ToDictionary(e => e.Name);
    }

    public static SafetensorsFile Open(string path)
    {
        if (!File.Exists(path)) throw new SafetensorsException(path, "file not found");
        var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.RandomAccess);
        try
        {
            using var stream = new FileStream(handle, FileAccess.Read, bufferSize: 0);
            var (entries, metadata, dataStart) = SafetensorsHeader.Read(path, stream);
            // FileStream over a SafeFileHandle does not own it when we keep using the handle; reopen to be safe.
            return new SafetensorsFile(path, File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.RandomAccess),
                entries, metadata, dataStart);
        }
        finally { handle.Dispose(); }
    }

    public bool Contains(string name) => byName.ContainsKey(name);

    public SafetensorsEntry Info(string name) =>
        byName.TryGetValue(name, out var e) ? e : throw new SafetensorsException(Path, "no such tensor in the file", name);

    /// <summary>
    /// One tensor on the CPU. By default it is backed by the file's memory map (writes to it stay private); with
    /// <paramref name="copy"/> it owns its memory. fp8 tensors become float32; <paramref name="dtype"/> converts after loading.
    /// </summary>
    public torch.Tensor Load(string name, torch.ScalarType? dtype = null, bool copy = false)
    {
        var e = Info(name);
        torch.Tensor t;
        if (e.DType is SafetensorsDType.F8_E4M3 or SafetensorsDType.F8_E5M2)
        {
            var raw = new byte[e.ByteCount];
            RandomAccess.Read(handle, raw, dataStart + e.Begin);
            var values = new float[raw.Length];
            for (int i = 0; i < raw.Length; i++)
                values[i] = e.DType == SafetensorsDType.F8_E4M3 ? Float8.DecodeE4M3(raw[i]) : Float8.DecodeE5M2(raw[i]);
            t = torch.tensor(values, e.Shape);
        }
        else if (!copy && e.ByteCount > 0 && (mapping ??= new MappedTensors(Path)).CanMap(dataStart + e.Begin, e.DType.Size()))
        {
            t = mapping.Tensor(dataStart + e.Begin, e.ByteCount, e.Shape, e.DType.ToScalarType());
        }
        else
        {
            t = torch.empty(e.Shape, e.DType.ToScalarType());
            if (e.ByteCount > 0) TensorMemory.ReadInto(t, handle, dataStart + e.Begin, e.ByteCount, Path);
        }
        if (dtype is { } d && d != t.dtype)
        {
            var converted = t.to_type(d);
            t.Dispose();
            t = converted;
        }
        return t;
    }

    /// <summary>Loads every tensor, in file order.</summary>
    public IEnumerable<(string Name, torch.Tensor Tensor)> LoadAll(torch.ScalarType? dtype = null, bool copy = false)
    {
        foreach (var e in Entries) yield return (e.Name, Load(e.Name, dtype, copy));
    }

    /// <summary>Closes the file; tensors already loaded from its memory map stay valid.</summary>
    public void Dispose()
    {
        handle.Dispose();
        mapping?.Dispose();
    }
}
