namespace MMedExpert.Core.Model;

/// <summary>
/// A model configuration (config.json, a preset, a vision_config object) that cannot describe a valid model: a required
/// key is missing, a value has the wrong type, or the values contradict each other. The message names the key.
/// </summary>
public class ModelConfigException : MmxException
{
    public ModelConfigException(string message) : base(message) { }
    public ModelConfigException(string message, Exception inner) : base(message, inner) { }
}
