using StbImageSharp;

namespace MMedExpert.Core.Vision;

/// <summary>
/// Decodes PNG and JPEG (and the other formats stb_image reads: BMP, GIF's first frame, TGA, PSD, HDR) to 8-bit RGB.
/// Alpha is dropped and gray is repeated over the three channels, as Pillow's <c>convert("RGB")</c> does in the
/// reference processor. EXIF orientation is not applied (nor is it by the reference processor).
/// </summary>
public static class ImageDecoder
{
    public static RgbImage Load(string path)
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ImageProcessingException($"{path}: cannot read the image file: {e.Message}", e);
        }
        return Decode(bytes, path);
    }

    /// <param name="source">names the image in errors (a path, a dataset item id)</param>
    public static RgbImage Decode(byte[] bytes, string source)
    {
        ImageResult result;
        try
        {
            result = ImageResult.FromMemory(bytes, ColorComponents.RedGreenBlue);
        }
        catch (Exception e)
        {
            throw new ImageProcessingException($"{source}: not a readable PNG or JPEG image ({e.Message})", e);
        }
        if (result is null || result.Data is null)
            throw new ImageProcessingException($"{source}: not a readable PNG or JPEG image");
        return new RgbImage(result.Width, result.Height, result.Data, source);
    }
}
