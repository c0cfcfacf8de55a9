namespace MMedExpert.Core.Vision;

/// <summary>An image that cannot be read or processed, or a preprocessor_config.json that cannot be used; the message
/// names the file (and the key, for a config).</summary>
public class ImageProcessingException : MmxException
{
    public ImageProcessingException(string message) : base(message) { }
    public ImageProcessingException(string message, Exception inner) : base(message, inner) { }
}
