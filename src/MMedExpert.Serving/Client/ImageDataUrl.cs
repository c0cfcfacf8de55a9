using MMedExpert.Core;

namespace MMedExpert.Serving.Client;

/// <summary>
/// An image file as a <c>data:</c> URL (<c>data:image/png;base64,…</c>), the form of an OpenAI <c>image_url</c> part that a
/// remote server can read without sharing the client's filesystem. The media type comes from the file's first bytes.
/// </summary>
public static class ImageDataUrl
{
    public static string FromFile(string path)
    {
        byte[] bytes;
        try { bytes = File.ReadAllBytes(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new MmxException($"{path}: cannot read the image ({e.Message})");
        }
        string mime = MediaType(bytes) ?? throw new MmxException($"{path}: not a PNG, JPEG, GIF, WebP or BMP image (by its first bytes)");
        return $"data:{mime};base64,{Convert.ToBase64String(bytes)}";
    }

    /// <summary>The media type by signature; null when unknown.</summary>
    public static string? MediaType(ReadOnlySpan<byte> b)
    {
        if (b.StartsWith((ReadOnlySpan<byte>)[0x89, (byte)'P', (byte)'N', (byte)'G'])) return "image/png";
        if (b.StartsWith((ReadOnlySpan<byte>)[0xFF, 0xD8, 0xFF])) return "image/jpeg";
        if (b.StartsWith("GIF8"u8)) return "image/gif";
        if (b.Length >= 12 && b.StartsWith("RIFF"u8) && b.Slice(8, 4).SequenceEqual("WEBP"u8)) return "image/webp";
        if (b.StartsWith("BM"u8)) return "image/bmp";
        return null;
    }
}
