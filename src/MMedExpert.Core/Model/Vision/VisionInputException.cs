namespace MMedExpert.Core.Model.Vision;

/// <summary>Inputs that the vision tower cannot take (pixel rows of the wrong width, a grid that does not match
/// them); the message names the tensor and both shapes.</summary>
public class VisionInputException : MmxException
{
    public VisionInputException(string message) : base(message) { }
}
