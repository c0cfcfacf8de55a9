using System.Text;
using System.Text.Json;

namespace MMedExpert.Core.IO;

/// <summary>One tensor's entry in a safetensors header; offsets are relative to the start of the data section.</summary>
public sealed record SafetensorsEntry(string Name, SafetensorsDType DType, long[] Shape, long Begin, long End)
{
    public long ByteCount => End - Begin;
    public long ElementCount => Shape.Aggregate(1L, (a, b) => a * b);
}

/// <summary>
/// Parses and strictly validates the header of a safetensors file: an 8-byte little-endian length N, then N bytes of
/// JSON mapping tensor names to {dtype, shape, data_offsets}, plus an optional "__metadata__" string map. The data
/// section must be covered exactly once by the tensors' byte ranges: no holes, overlaps or trailing bytes.
/// </summary>
public static class SafetensorsHeader
{
    /// <summary>The reference implementation's limit on the JSON header; larger values mean a corrupt length.</summary>
    public const long MaxHeaderBytes = 100_000_000;

    public static (List<SafetensorsEntry> Entries, Dictionary<string, string> Metadata, long DataStart) Read(string path, Stream stream)
    {
        long fileLength = stream.Length;
        if (fileLength < 8) throw new SafetensorsException(path, $"truncated: {fileLength} bytes, shorter than the 8-byte header length");
        Span<byte> lengthBytes = stackalloc byte[8];
        stream.Position = 0;
        stream.ReadExactly(lengthBytes);
        ulong headerLength = BitConverter.ToUInt64(lengthBytes);
        if (headerLength < 2 || headerLength > MaxHeaderBytes || (long)headerLength > fileLength - 8)
            throw new SafetensorsException(path, $"header length {headerLength} out of bounds (file has {fileLength} bytes)");

        var json = new byte[headerLength];
        stream.ReadExactly(json);
        long dataStart = 8 + (long)headerLength;
        var (entries, metadata) = Parse(path, json);
        ValidateLayout(path, entries, fileLength - dataStart);
        return (entries, metadata, dataStart);
    }

    static (List<SafetensorsEntry>, Dictionary<string, string>) Parse(string path, byte[] json)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = 8 }); }
        catch (JsonException e) { throw new SafetensorsException(path, $"invalid JSON header: {e.Message}"); }
        catch (ArgumentException e) { throw new SafetensorsException(path, $"invalid JSON header: {e.Message}"); }

        using (doc)
        try
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new SafetensorsException(path, "invalid header: the JSON root is not an object");
            var entries = new List<SafetensorsEntry>();
            var metadata = new Dictionary<string, string>();
            var seen = new HashSet<string>();
            foreach (var prop in doc.RootElement.EnumerateObject())
            {
                if (!seen.Add(prop.Name)) throw new SafetensorsException(path, "duplicate name in header", prop.Name);
                if (prop.Name == "__metadata__")
                {
                    if (prop.Value.ValueKind != JsonValueKind.Object)
                        throw new SafetensorsException(path, "__metadata__ is not an object of strings");
                    foreach (var m in prop.Value.EnumerateObject())
                    {
                        if (m.Value.ValueKind != JsonValueKind.String)
                            throw new SafetensorsException(path, $"__metadata__ value of '{m.Name}' is not a string");
                        metadata[m.Name] = m.Value.GetString()!;
                    }
                    continue;
                }
                entries.Add(ParseEntry(path, prop.Name, prop.Value));
            }
            return (entries, metadata);
        }
        catch (InvalidOperationException e)
        {
            // e.g. a string that is not valid UTF-8: JsonDocument parses it lazily and throws on access.
            throw new SafetensorsException(path, $"invalid JSON header: {e.Message}");
        }
    }

    static SafetensorsEntry ParseEntry(string path, string name, JsonElement e)
    {
        if (e.ValueKind != JsonValueKind.Object) throw new SafetensorsException(path, "entry is not an object", name);
        string? dtypeText = null;
        long[]? shape = null, offsets = null;
        foreach (var field in e.EnumerateObject())
        {
            switch (field.Name)
            {
                case "dtype":
                    if (field.Value.ValueKind != JsonValueKind.String) throw new SafetensorsException(path, "dtype is not a string", name);
                    dtypeText = field.Value.GetString();
                    break;
                case "shape": shape = Integers(path, name, "shape", field.Value); break;
                case "data_offsets": offsets = Integers(path, name, "data_offsets", field.Value); break;
                default: throw new SafetensorsException(path, $"unknown field '{field.Name}'", name);
            }
        }
        if (dtypeText == null) throw new SafetensorsException(path, "missing dtype", name);
        if (shape == null) throw new SafetensorsException(path, "missing shape", name);
        if (offsets == null) throw new SafetensorsException(path, "missing data_offsets", name);
        if (!SafetensorsDTypes.TryParse(dtypeText, out var dtype)) throw new SafetensorsException(path, $"unknown dtype '{dtypeText}'", name);
        if (offsets.Length != 2 || offsets[0] > offsets[1])
            throw new SafetensorsException(path, $"data_offsets must be [begin, end] with begin <= end, got [{string.Join(", ", offsets)}]", name);

        long expected;
        try { expected = checked(shape.Aggregate(1L, (a, b) => checked(a * b)) * dtype.Size()); }
        catch (OverflowException) { throw new SafetensorsException(path, $"shape [{string.Join(", ", shape)}] is too large", name); }
        if (expected != offsets[1] - offsets[0])
            throw new SafetensorsException(path,
                $"shape [{string.Join(", ", shape)}] × {dtype} ({dtype.Size()} bytes) = {expected} bytes, but data_offsets span {offsets[1] - offsets[0]} bytes", name);
        return new SafetensorsEntry(name, dtype, shape, offsets[0], offsets[1]);
    }

    static long[] Integers(string path, string name, string field, JsonElement e)
    {
        if (e.ValueKind != JsonValueKind.Array) throw new SafetensorsException(path, $"{field} is not an array", name);
        var list = new List<long>();
        foreach (var x in e.EnumerateArray())
        {
            if (x.ValueKind != JsonValueKind.Number || !x.TryGetInt64(out long v) || v < 0)
                throw new SafetensorsException(path, $"{field} must hold non-negative integers", name);
            list.Add(v);
        }
        return list.ToArray();
    }

    static void ValidateLayout(string path, List<SafetensorsEntry> entries, long dataLength)
    {
        long cursor = 0;
        SafetensorsEntry? previous = null;
        foreach (var e in entries.OrderBy(e => e.Begin).ThenBy(e => e.End))
        {
            if (e.End > dataLength)
                throw new SafetensorsException(path,
                    $"data_offsets [{e.Begin}, {e.End}] out of range: the data section has {dataLength} bytes (truncated file?)", e.Name);
            if (e.Begin < cursor)
                throw new SafetensorsException(path, $"data_offsets [{e.Begin}, {e.End}] overlap tensor '{previous!.Name}'", e.Name);
            if (e.Begin > cursor)
                throw new SafetensorsException(path, $"hole of {e.Begin - cursor} bytes before data_offsets [{e.Begin}, {e.End}]", e.Name);
            cursor = e.End;
            previous = e;
        }
        if (cursor != dataLength)
            throw new SafetensorsException(path, $"{dataLength - cursor} bytes after the last tensor are not covered by any tensor");
    }

    /// <summary>Serialises a header, padded with spaces to a multiple of 8 bytes (as the reference writer does).</summary>
    public static byte[] Write(IEnumerable<SafetensorsEntry> entries, IReadOnlyDictionary<string, string>? metadata)
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                w.WriteStartObject("__metadata__");
                foreach (var (k, v) in metadata.OrderBy(kv => kv.Key, StringComparer.Ordinal)) w.WriteString(k, v);
                w.WriteEndObject();
            }
            foreach (var e in entries)
            {
                w.WriteStartObject(e.Name);
                w.WriteString("dtype", e.DType.ToString());
                w.WriteStartArray("shape");
                foreach (var d in e.Shape) w.WriteNumberValue(d);
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(e.Begin);
                w.WriteNumberValue(e.End);
                w.WriteEndArray();
                w.WriteEndObject();
            }
            w.WriteEndObject();
        }
        int padded = (int)((buffer.Length + 7) / 8 * 8);
        var bytes = new byte[padded];
        buffer.ToArray().CopyTo(bytes, 0);
        for (int i = (int)buffer.Length; i < padded; i++) bytes[i] = (byte)' ';
        return bytes;
    }
}
