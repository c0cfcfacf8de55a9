using System.Text.Json;
using System.Text.Json.Nodes;

namespace MMedExpert.Core.Vision;

/// <summary>
/// Settings of the Qwen2-VL / Qwen2.5-VL image processor, as in a checkpoint's preprocessor_config.json. Every key
/// is optional; the defaults are those of the published Qwen2.5-VL checkpoints (min_pixels 56·56, max_pixels
/// 28·28·16384, patch 14, temporal patch 2, merge 2, CLIP mean/std, rescale 1/255, bicubic).
/// </summary>
public sealed record ImageProcessorConfig
{
    public static readonly double[] ClipMean = { 0.48145466, 0.4578275, 0.40821073 };
    public static readonly double[] ClipStd = { 0.26862954, 0.26130258, 0.27577711 };

    public long MinPixels { get; init; } = 56 * 56;
    public long MaxPixels { get; init; } = 28 * 28 * 16384;
    public int PatchSize { get; init; } = 14;
    public int TemporalPatchSize { get; init; } = 2;
    public int MergeSize { get; init; } = 2;
    public IReadOnlyList<double> ImageMean { get; init; } = ClipMean;
    public IReadOnlyList<double> ImageStd { get; init; } = ClipStd;
    public bool DoResize { get; init; } = true;
    public bool DoRescale { get; init; } = true;
    public double RescaleFactor { get; init; } = 1.0 / 255;
    public bool DoNormalize { get; init; } = true;
    public ResampleFilter Resample { get; init; } = ResampleFilter.Bicubic;

    /// <summary>Keys of the JSON that this reader does not use (image_processor_type, processor_class, ...).</summary>
    public IReadOnlyList<string> IgnoredKeys { get; init; } = Array.Empty<string>();

    public static ImageProcessorConfig Default { get; } = new();

    /// <summary>Both image sides are multiples of this: patch_size · merge_size (28).</summary>
    public int Factor => PatchSize * MergeSize;

    /// <summary>Values in one pixel row: 3 · temporal_patch_size · patch_size² (1176).</summary>
    public int RowWidth => 3 * TemporalPatchSize * PatchSize * PatchSize;

    /// <summary>Reads preprocessor_config.json from a file, or from a checkpoint folder that holds one.</summary>
    public static ImageProcessorConfig Load(string path)
    {
        string file = Directory.Exists(path) ? Path.Combine(path, "preprocessor_config.json") : path;
        if (!File.Exists(file))
            throw new ImageProcessingException($"{file}: preprocessor config not found");
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(File.ReadAllText(file));
        }
        catch (JsonException e)
        {
            throw new ImageProcessingException($"{file}: not valid JSON ({e.Message})", e);
        }
        using (doc) return FromJson(doc.RootElement, file);
    }

    private static readonly HashSet<string> KnownKeys = new()
    {
        "min_pixels", "max_pixels", "size", "patch_size", "temporal_patch_size", "merge_size", "image_mean", "image_std",
        "do_resize", "do_rescale", "rescale_factor", "do_normalize", "do_convert_rgb", "resample",
    };

    public static ImageProcessorConfig FromJson(JsonElement json, string source = "preprocessor_config.json")
    {
        if (json.ValueKind != JsonValueKind.Object)
            throw new ImageProcessingException($"{source}: must be a JSON object, got {json.ValueKind}");
        var d = Default;

        // Pixel limits: min_pixels / max_pixels win over size {shortest_edge, longest_edge}, as in the reference.
        long? sizeMin = null, sizeMax = null;
        if (json.TryGetProperty("size", out var size) && size.ValueKind == JsonValueKind.Object)
        {
            sizeMin = OptionalLong(size, "shortest_edge", source + ": size") ?? OptionalLong(size, "min_pixels", source + ": size");
            sizeMax = OptionalLong(size, "longest_edge", source + ": size") ?? OptionalLong(size, "max_pixels", source + ": size");
        }

        if (json.TryGetProperty("do_convert_rgb", out var rgb) && rgb.ValueKind == JsonValueKind.False)
            throw new ImageProcessingException($"{source}: 'do_convert_rgb' false is not supported (images are always decoded to RGB)");

        int resample = (int)(OptionalLong(json, "resample", source) ?? (int)d.Resample);
        if (resample != (int)ResampleFilter.Bicubic && resample != (int)ResampleFilter.Bilinear)
            throw new ImageProcessingException($"{source}: 'resample' {resample} is not supported (2 = bilinear, 3 = bicubic)");

        var config = new ImageProcessorConfig
        {
            MinPixels = OptionalLong(json, "min_pixels", source) ?? sizeMin ?? d.MinPixels,
            MaxPixels = OptionalLong(json, "max_pixels", source) ?? sizeMax ?? d.MaxPixels,
            PatchSize = (int)(OptionalLong(json, "patch_size", source) ?? d.PatchSize),
            TemporalPatchSize = (int)(OptionalLong(json, "temporal_patch_size", source) ?? d.TemporalPatchSize),
            MergeSize = (int)(OptionalLong(json, "merge_size", source) ?? d.MergeSize),
            ImageMean = ChannelValues(json, "image_mean", source) ?? d.ImageMean,
            ImageStd = ChannelValues(json, "image_std", source) ?? d.ImageStd,
            DoResize = OptionalBool(json, "do_resize", source) ?? d.DoResize,
            DoRescale = OptionalBool(json, "do_rescale", source) ?? d.DoRescale,
            RescaleFactor = OptionalDouble(json, "rescale_factor", source) ?? d.RescaleFactor,
            DoNormalize = OptionalBool(json, "do_normalize", source) ?? d.DoNormalize,
            Resample = (ResampleFilter)resample,
            IgnoredKeys = json.EnumerateObject().Select(p => p.Name).Where(k => !KnownKeys.Contains(k)).ToArray(),
        };
        config.Validate(source);
        return config;
    }

    public void Validate(string source = "preprocessor_config.json")
    {
        void Positive(string key, long v)
        {
            if (v <= 0) throw new ImageProcessingException($"{source}: '{key}' must be positive, got {v}");
        }
        Positive("min_pixels", MinPixels);
        Positive("max_pixels", MaxPixels);
        Positive("patch_size", PatchSize);
        Positive("temporal_patch_size", TemporalPatchSize);
        Positive("merge_size", MergeSize);
        if (MinPixels > MaxPixels)
            throw new ImageProcessingException($"{source}: 'min_pixels' ({MinPixels}) exceeds 'max_pixels' ({MaxPixels})");
        if (ImageMean.Count != 3)
            throw new ImageProcessingException($"{source}: 'image_mean' must have 3 values (RGB), got {ImageMean.Count}");
        if (ImageStd.Count != 3)
            throw new ImageProcessingException($"{source}: 'image_std' must have 3 values (RGB), got {ImageStd.Count}");
        if (ImageStd.Any(s => s == 0))
            throw new ImageProcessingException($"{source}: 'image_std' has a zero entry");
    }

    /// <summary>The preprocessor_config.json object in Hugging Face's spelling (both limit spellings).</summary>
    public JsonObject ToJson() => new()
    {
        ["do_convert_rgb"] = true,
        ["do_normalize"] = DoNormalize,
        ["do_rescale"] = DoRescale,
        ["do_resize"] = DoResize,
        ["image_mean"] = new JsonArray(ImageMean.Select(v => (JsonNode)v).ToArray()),
        ["image_processor_type"] = "Qwen2VLImageProcessor",
        ["image_std"] = new JsonArray(ImageStd.Select(v => (JsonNode)v).ToArray()),
        ["max_pixels"] = MaxPixels,
        ["merge_size"] = MergeSize,
        ["min_pixels"] = MinPixels,
        ["patch_size"] = PatchSize,
        ["processor_class"] = "Qwen2_5_VLProcessor",
        ["resample"] = (int)Resample,
        ["rescale_factor"] = RescaleFactor,
        ["size"] = new JsonObject { ["longest_edge"] = MaxPixels, ["shortest_edge"] = MinPixels },
        ["temporal_patch_size"] = TemporalPatchSize,
    };

    private static long? OptionalLong(JsonElement json, string key, string source)
    {
        if (!json.TryGetProperty(key, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        if (v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out long l)) return l;
        if (v.ValueKind == JsonValueKind.Number && v.TryGetDouble(out double d) && d == Math.Floor(d) && Math.Abs(d) < 9e15) return (long)d;
        throw new ImageProcessingException($"{source}: '{key}' must be an integer, got {v.GetRawText()}");
    }

    private static double? OptionalDouble(JsonElement json, string key, string source)
    {
        if (!json.TryGetProperty(key, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        if (v.ValueKind != JsonValueKind.Number)
            throw new ImageProcessingException($"{source}: '{key}' must be a number, got {v.GetRawText()}");
        return v.GetDouble();
    }

    private static bool? OptionalBool(JsonElement json, string key, string source)
    {
        if (!json.TryGetProperty(key, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        return v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw new ImageProcessingException($"{source}: '{key}' must be true or false, got {v.GetRawText()}"),
        };
    }

    /// <summary>A list of 3 numbers, or one number meaning the same for every channel.</summary>
    private static double[]? ChannelValues(JsonElement json, string key, string source)
    {
        if (!json.TryGetProperty(key, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        if (v.ValueKind == JsonValueKind.Number) return new[] { v.GetDouble(), v.GetDouble(), v.GetDouble() };
        if (v.ValueKind == JsonValueKind.Array && v.EnumerateArray().All(e => e.ValueKind == JsonValueKind.Number))
            return v.EnumerateArray().Select(e => e.GetDouble()).ToArray();
        throw new ImageProcessingException($"{source}: '{key}' must be a number or a list of numbers, got {v.GetRawText()}");
    }
}
