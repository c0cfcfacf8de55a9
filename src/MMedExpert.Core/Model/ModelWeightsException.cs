namespace MMedExpert.Core.Model;

/// <summary>Checkpoint weights that do not fit the model: missing, unexpected or mis-shaped tensors (the message names them).</summary>
public sealed class ModelWeightsException : MmxException
{
    public ModelWeightsException(string message) : base(message) { }
}
