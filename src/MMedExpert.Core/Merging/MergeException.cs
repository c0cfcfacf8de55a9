namespace MMedExpert.Core.Merging;

/// <summary>Bad input to a merge: an adapter, base checkpoint or merge config that cannot be merged. The message names the
/// file (and tensor or field).</summary>
public sealed class MergeException : MmxException
{
    public MergeException(string message) : base(message) { }
    public MergeException(string message, Exception inner) : base(message, inner) { }
}
