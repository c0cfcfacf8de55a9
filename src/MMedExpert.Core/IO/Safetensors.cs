using TorchSharp;

namespace MMedExpert.Core.IO;

/// <summary>Writes safetensors files (atomically: temp file + rename).</summary>
public static class Safetensors
{
    /// <summary>
    /// Saves tensors under their names. Like the reference writer, tensors are laid out by decreasing element size,
    /// then by name, so every tensor starts aligned to its element size.
    /// </summary>
    public static void Save(string path, IEnumerable<KeyValuePair<string, torch.Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var list = tensors.ToList();
        var seen = new HashSet<string>();
        foreach (var (name, _) in list)
            if (!seen.Add(name)) throw new SafetensorsException(path, "duplicate name", name);

        var ordered = list
            .Select(kv => (kv.Key, kv.Value, DType: SafetensorsDTypes.FromScalarType(kv.Value.dtype, path, kv.Key)))
            .OrderByDescending(x => x.DType.Size()).ThenBy(x => x.Key, StringComparer.Ordinal).ToList();
        var entries = new List<SafetensorsEntry>();
        long offset = 0;
        foreach (var (name, t, dtype) in ordered)
        {
            long bytes = t.numel() * dtype.Size();
            entries.Add(new SafetensorsEntry(name, dtype, t.shape.ToArray(), offset, offset + bytes));
            offset += bytes;
        }
        byte[] header = SafetensorsHeader.Write(entries, metadata);

        AtomicFile.Write(path, tmp =>
        {
            using var stream = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20);
            stream.Write(BitConverter.GetBytes((ulong)header.Length));
            stream.Write(header);
            foreach (var (name, t, _) in ordered)
            {
                using var scope = torch.NewDisposeScope();
                var cpu = t.device_type == DeviceType.CPU && t.is_contiguous() ? t : t.cpu().contiguous();
                TensorMemory.WriteTo(cpu, stream, cpu.numel() * cpu.ElementSize);
            }
            stream.Flush(flushToDisk: false);
        });
    }

    public static void Save(string path, IEnumerable<(string Name, torch.Tensor Tensor)> tensors, IReadOnlyDictionary<string, string>? metadata = null) =>
        Save(path, tensors.Select(t => new KeyValuePair<string, torch.Tensor>(t.Name, t.Tensor)), metadata);
}
