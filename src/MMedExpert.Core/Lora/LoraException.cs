namespace MMedExpert.Core.Lora;

/// <summary>A LoRA error: bad configuration, adapter file, tensor or adapter name. The message names the input.</summary>
public sealed class LoraException : MmxException
{
    public LoraException(string message) : base(message) { }
    public LoraException(string message, Exception inner) : base(message, inner) { }
}
