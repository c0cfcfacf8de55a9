using MMedExpert.Core;

namespace MMedExpert.Serving.Server;

/// <summary>A server that cannot start (bad options, a model or adapter that does not load): one line for the CLI.</summary>
public sealed class ServeException : MmxException
{
    public ServeException(string message) : base(message) { }
    public ServeException(string message, Exception inner) : base(message, inner) { }
}
