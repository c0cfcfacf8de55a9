namespace MMedExpert.Core.Training;

/// <summary>A training error: bad checkpoint, metrics file or options. The message names the file and field.</summary>
public sealed class TrainingException : MmxException
{
    public TrainingException(string message) : base(message) { }
}
