namespace MMedExpert.Core.Export;

/// <summary>An export that cannot be made as asked: the message names the input (folder, file, key) or the output.</summary>
public sealed class ExportException : MmxException
{
    public ExportException(string message) : base(message) { }
}
