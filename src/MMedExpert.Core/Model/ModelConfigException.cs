namespace MMedExpert.Core.Model;

/// <summary>
/// A model configuration that cannot be used: a missing or invalid key of config.json (the message names the file and key).
/// STAND-IN written on the text-model branch so it compiles before the vision branch lands; the vision branch owns this file.
/// </summary>
public sealed class ModelConfigException : MmxException
{
    public ModelConfigException(string message) : base(message) { }
}
