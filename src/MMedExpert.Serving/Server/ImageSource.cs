using MMedExpert.Core;
using MMedExpert.Core.Vision;

namespace MMedExpert.Serving.Server;

/// <summary>
/// Reads the image an image_url names: a <c>data:image/png;base64,...</c> or <c>data:image/jpeg;base64,...</c> URL, a
/// <c>file://</c> URL or a local path inside <paramref name="localRoot"/> (the server reads the machine it runs on; see
/// <see cref="ServeOptions.AllowedLocalMediaPath"/>; remote http(s) URLs are not fetched). Any failure is a 400 naming the part.
/// </summary>
public static class ImageSource
{
    /// <param name="localRoot">the folder local files must lie in; null: no local file may be read</param>
    public static RgbImage Load(string url, string param, string? localRoot)
    {
        try
        {
            if (url.StartsWith("data:", StringComparison.OrdinalIgnoreCase)) return FromDataUrl(url, param);
            if (url.StartsWith("http://", StringComparison.OrdinalIgnoreCase) || url.StartsWith("https://", StringComparison.OrdinalIgnoreCase))
                throw ApiError.BadRequest($"{param}: remote image URLs are not fetched; send a data URL or a local path", param);
            string path = url.StartsWith("file:", StringComparison.OrdinalIgnoreCase)
                ? (Uri.TryCreate(url, UriKind.Absolute, out var uri) && uri.IsFile ? uri.LocalPath
                    : throw ApiError.BadRequest($"{param}: '{url}' is not a valid file URL", param))
                : url;
            if (localRoot is null)
                throw ApiError.BadRequest($"{param}: this server reads no local image files (it listens beyond loopback; start it with --allowed-local-media-path DIR, or send a data URL)", param);
            string full = Path.GetFullPath(path);
            string root = Path.EndsInDirectorySeparator(localRoot) ? localRoot : localRoot + Path.DirectorySeparatorChar;
            if (!full.StartsWith(root, StringComparison.Ordinal))
                throw ApiError.BadRequest($"{param}: '{path}' is outside the allowed local media folder {localRoot}", param);
            if (!File.Exists(full)) throw ApiError.BadRequest($"{param}: image file '{path}' not found", param);
            path = full;
            return ImageDecoder.Load(path);
        }
        catch (MmxException e) { throw ApiError.BadRequest($"{param}: {e.Message}", param); }
    }

    static RgbImage FromDataUrl(string url, string param)
    {
        int comma = url.IndexOf(',');
        if (comma < 0) throw ApiError.BadRequest($"{param}: data URL without a ',' before its data", param);
        string header = url[5..comma];
        if (!header.EndsWith(";base64", StringComparison.OrdinalIgnoreCase))
            throw ApiError.BadRequest($"{param}: data URL must be base64 (data:image/png;base64,...)", param);
        string mediaType = header[..^7];
        if (!mediaType.StartsWith("image/", StringComparison.OrdinalIgnoreCase))
            throw ApiError.BadRequest($"{param}: data URL media type '{mediaType}' is not an image", param);
        var data = url.AsSpan(comma + 1);
        var bytes = new byte[data.Length * 3 / 4 + 3];
        if (!Convert.TryFromBase64Chars(data, bytes, out int written))
            throw ApiError.BadRequest($"{param}: data URL is not valid base64", param);
        return ImageDecoder.Decode(bytes[..written], $"{param} (data URL)");
    }
}
