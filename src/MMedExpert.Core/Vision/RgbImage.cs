namespace MMedExpert.Core.Vision;

/// <summary>
/// An 8-bit RGB image in row-major, channel-last order: byte (y·Width + x)·3 + c is channel c of pixel (x, y).
/// <see cref="Source"/> names where it came from (a file path, or a description) for error messages.
/// </summary>
public sealed class RgbImage
{
    public int Width { get; }
    public int Height { get; }
    public byte[] Pixels { get; }
    public string Source { get; }

    public RgbImage(int width, int height, byte[] pixels, string source)
    {
        if (width <= 0 || height <= 0)
            throw new ImageProcessingException($"{source}: image size must be positive, got {width}×{height}");
        if (pixels.Length != (long)width * height * 3)
            throw new ImageProcessingException($"{source}: expected {(long)width * height * 3} bytes for {width}×{height} RGB, got {pixels.Length}");
        Width = width;
        Height = height;
        Pixels = pixels;
        Source = source;
    }
}
