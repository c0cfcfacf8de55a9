namespace MMedExpert.Core.Tokenization;

/// <summary>
/// A tokenizer file (or input) this project cannot honour exactly: the message names the file and the JSON field, so a
/// user knows what to fix instead of getting silently different token ids.
/// </summary>
public sealed class TokenizerException : MmxException
{
    public TokenizerException(string message) : base(message) { }
    public TokenizerException(string message, Exception inner) : base(message, inner) { }

    /// <summary>"{file}: {field}: {problem}", the one shape every tokenizer-file error takes.</summary>
    public TokenizerException(string file, string field, string problem) : base($"{file}: {field}: {problem}") { }

    public TokenizerException(string file, string field, string problem, Exception inner)
        : base($"{file}: {field}: {problem}", inner) { }
}
