using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;

namespace MMedExpert.Core.IO;

/// <summary>
/// A set of tensors stored as one safetensors file, as shards listed by a Hugging Face index
/// (<c>model.safetensors.index.json</c>: {"metadata": {"total_size": N}, "weight_map": {tensor: shard file}}), or as a
/// directory holding either. Tensors are read one at a time on demand.
/// </summary>
public sealed class Checkpoint : IDisposable
{
    public const string IndexFileName = "model.safetensors.index.json";
    public const string SingleFileName = "model.safetensors";

    readonly Dictionary<string, SafetensorsFile> fileOf = new();
    readonly List<SafetensorsFile> files = new();

    /// <summary>What was opened: the file, index or directory path.</summary>
    public string Source { get; }
    public IReadOnlyList<SafetensorsFile> Files => files;
    public IEnumerable<string> Names => files.SelectMany(f => f.Names);
    public long TotalBytes => files.Sum(f => f.DataBytes);

    Checkpoint(string source) => Source = source;

    public static Checkpoint Open(string path)
    {
        if (Directory.Exists(path))
        {
            string index = System.IO.Path.Combine(path, IndexFileName);
            if (File.Exists(index)) return OpenIndex(index);
            var shards = Directory.GetFiles(path, "*.safetensors").OrderBy(f => f, StringComparer.Ordinal).ToList();
            if (shards.Count == 0) throw new SafetensorsException(path, "no .safetensors file or index in the directory");
            return OpenFiles(path, shards);
        }
        if (!File.Exists(path)) throw new SafetensorsException(path, "no such file or directory");
        return path.EndsWith(".json", StringComparison.OrdinalIgnoreCase) ? OpenIndex(path) : OpenFiles(path, new() { path });
    }

    static Checkpoint OpenFiles(string source, List<string> paths)
    {
        var c = new Checkpoint(source);
        try
        {
            foreach (var p in paths) c.Add(SafetensorsFile.Open(p));
            return c;
        }
        catch { c.Dispose(); throw; }
    }

    void Add(SafetensorsFile f)
    {
        files.Add(f);
        foreach (var name in f.Names)
            if (!fileOf.TryAdd(name, f))
                throw new SafetensorsException(f.Path, $"also stored in {fileOf[name].Path}", name);
    }

    static Checkpoint OpenIndex(string indexPath)
    {
        JsonNode? root;
        try { root = JsonNode.Parse(File.ReadAllText(indexPath)); }
        catch (JsonException e) { throw new SafetensorsException(indexPath, $"invalid JSON: {e.Message}"); }
        if (root?["weight_map"] is not JsonObject map) throw new SafetensorsException(indexPath, "missing 'weight_map' object");

        string dir = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(indexPath))!;
        var expected = new Dictionary<string, string>();
        foreach (var (tensor, file) in map)
        {
            if (file is not JsonValue v || !v.TryGetValue(out string? shard) || string.IsNullOrEmpty(shard))
                throw new SafetensorsException(indexPath, "weight_map value is not a file name", tensor);
            if (shard.Contains('/') || shard.Contains('\\') || shard == "..")
                throw new SafetensorsException(indexPath, $"shard '{shard}' must be a file name in the index's directory", tensor);
            expected[tensor] = shard;
        }
        var c = new Checkpoint(indexPath);
        try
        {
            foreach (var shard in expected.Values.Distinct().OrderBy(s => s, StringComparer.Ordinal))
            {
                string shardPath = System.IO.Path.Combine(dir, shard);
                if (!File.Exists(shardPath)) throw new SafetensorsException(indexPath, $"shard '{shard}' listed in weight_map does not exist");
                c.Add(SafetensorsFile.Open(shardPath));
            }
            foreach (var (tensor, shard) in expected)
            {
                if (!c.fileOf.TryGetValue(tensor, out var f))
                    throw new SafetensorsException(indexPath, $"weight_map puts it in '{shard}', which does not contain it", tensor);
                if (System.IO.Path.GetFileName(f.Path) != shard)
                    throw new SafetensorsException(indexPath, $"weight_map says '{shard}' but it is in '{System.IO.Path.GetFileName(f.Path)}'", tensor);
            }
            foreach (var name in c.fileOf.Keys)
                if (!expected.ContainsKey(name))
                    throw new SafetensorsException(c.fileOf[name].Path, "not listed in the index's weight_map", name);
            return c;
        }
        catch { c.Dispose(); throw; }
    }

    public bool Contains(string name) => fileOf.ContainsKey(name);

    public SafetensorsEntry Info(string name) =>
        fileOf.TryGetValue(name, out var f) ? f.Info(name) : throw new SafetensorsException(Source, "no such tensor in the checkpoint", name);

    public torch.Tensor Load(string name, torch.ScalarType? dtype = null, bool copy = false) =>
        fileOf.TryGetValue(name, out var f) ? f.Load(name, dtype, copy) : throw new SafetensorsException(Source, "no such tensor in the checkpoint", name);

    /// <summary>
    /// Writes tensors into <paramref name="dir"/> as <c>model.safetensors</c>, or, when they exceed
    /// <paramref name="maxShardBytes"/>, as <c>model-0000i-of-0000n.safetensors</c> shards plus the index. Each file is
    /// written atomically; the index last, so a reader never sees an index pointing at a missing shard.
    /// </summary>
    public static void Save(string dir, IReadOnlyList<KeyValuePair<string, torch.Tensor>> tensors, long maxShardBytes = 5L << 30,
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        Directory.CreateDirectory(dir);
        var shards = new List<List<KeyValuePair<string, torch.Tensor>>> { new() };
        long current = 0, total = 0;
        foreach (var kv in tensors)
        {
            long bytes = kv.Value.numel() * kv.Value.ElementSize;
            if (current > 0 && current + bytes > maxShardBytes) { shards.Add(new()); current = 0; }
            shards[^1].Add(kv);
            current += bytes;
            total += bytes;
        }
        metadata ??= new Dictionary<string, string> { ["format"] = "pt" };
        if (shards.Count == 1)
        {
            Safetensors.Save(System.IO.Path.Combine(dir, SingleFileName), shards[0], metadata);
            return;
        }
        var weightMap = new JsonObject();
        for (int i = 0; i < shards.Count; i++)
        {
            string name = $"model-{i + 1:D5}-of-{shards.Count:D5}.safetensors";
            Safetensors.Save(System.IO.Path.Combine(dir, name), shards[i], metadata);
            foreach (var kv in shards[i]) weightMap[kv.Key] = name;
        }
        var index = new JsonObject
        {
            ["metadata"] = new JsonObject { ["total_size"] = total },
            ["weight_map"] = new JsonObject(weightMap.OrderBy(kv => kv.Key, StringComparer.Ordinal)
                .Select(kv => new KeyValuePair<string, JsonNode?>(kv.Key, kv.Value?.DeepClone()))),
        };
        AtomicFile.WriteAllText(System.IO.Path.Combine(dir, IndexFileName), index.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    public void Dispose()
    {
        foreach (var f in files) f.Dispose();
    }
}
