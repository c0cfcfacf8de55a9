namespace MMedExpert.Core.IO;

/// <summary>A safetensors file or checkpoint that cannot be read or written; the message names the file (and tensor).</summary>
public sealed class SafetensorsException : MmxException
{
    public string File { get; }
    public string? Tensor { get; }

    public SafetensorsException(string file, string message, string? tensor = null)
        : base(tensor == null ? $"{file}: {message}" : $"{file}: tensor '{tensor}': {message}")
    {
        File = file;
        Tensor = tensor;
    }
}
