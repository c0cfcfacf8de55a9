namespace MMedExpert.Core;

/// <summary>
/// The project's error for bad input: the message names the input (file, line, tensor, key). Each area derives its own
/// type; the CLI prints the message as one line and exits with code 2 (stack trace only with --verbose).
/// </summary>
public class MmxException : Exception
{
    public MmxException(string message) : base(message) { }
    public MmxException(string message, Exception inner) : base(message, inner) { }
}
