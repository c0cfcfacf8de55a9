namespace MMedExpert.Core.Vision;

/// <summary>
/// The size an image is resized to before patching (Qwen2-VL's smart_resize): both sides multiples of
/// <c>factor</c> = patch_size · merge_size (28), the pixel count within [min_pixels, max_pixels], the aspect ratio kept
/// as closely as possible. Rounding as in the reference: each side to the nearest multiple (halves to even, as
/// Python's round), then, if the area is too large, floor of side/β with β = √(h·w / max_pixels), or if too small,
/// ceil of side·β with β = √(min_pixels / (h·w)). Sides never drop below one factor.
/// </summary>
public static class SmartResize
{
    public const double MaxAspectRatio = 200;

    /// <summary>(height, width) after resizing; <paramref name="source"/> names the image in errors.</summary>
    public static (int Height, int Width) Compute(int height, int width, int factor, long minPixels, long maxPixels, string source = "image")
    {
        if (height <= 0 || width <= 0)
            throw new ImageProcessingException($"{source}: image size must be positive, got {width}×{height}");
        if ((double)Math.Max(height, width) / Math.Min(height, width) > MaxAspectRatio)
            throw new ImageProcessingException(
                $"{source}: aspect ratio {Math.Max(height, width)}:{Math.Min(height, width)} exceeds {MaxAspectRatio}:1");

        long hBar = Math.Max(factor, RoundByFactor(height, factor));
        long wBar = Math.Max(factor, RoundByFactor(width, factor));
        if (hBar * wBar > maxPixels)
        {
            double beta = Math.Sqrt((double)height * width / maxPixels);
            hBar = Math.Max(factor, (long)Math.Floor(height / beta / factor) * factor);
            wBar = Math.Max(factor, (long)Math.Floor(width / beta / factor) * factor);
        }
        else if (hBar * wBar < minPixels)
        {
            double beta = Math.Sqrt((double)minPixels / ((double)height * width));
            hBar = (long)Math.Ceiling(height * beta / factor) * factor;
            wBar = (long)Math.Ceiling(width * beta / factor) * factor;
        }
        return (checked((int)hBar), checked((int)wBar));
    }

    private static long RoundByFactor(int value, int factor) =>
        (long)Math.Round((double)value / factor, MidpointRounding.ToEven) * factor;
}
