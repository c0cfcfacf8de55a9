namespace MMedExpert.Core.Tokenization;

/// <summary>
/// A token matched as a whole string before BPE (the `added_tokens` of tokenizer.json), e.g. &lt;|im_start|&gt;.
/// <paramref name="Special"/> tokens are skipped by Decode(skipSpecial) and left unparsed by Encode(parseSpecial: false);
/// <paramref name="Normalized"/> tokens are matched in the normalized text instead of the raw text.
/// </summary>
public sealed record AddedToken(int Id, string Content, bool Special, bool Normalized = false);
