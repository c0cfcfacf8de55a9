using System.Buffers;

namespace MMedExpert.Core.Tokenization;

/// <summary>
/// Finds added tokens in text the way the reference does (Aho-Corasick, leftmost-longest): the earliest position where
/// any token starts wins, and among tokens starting there the longest. Candidates are few, so a vectorised search for
/// their first characters followed by ordinal prefix checks is all it takes.
/// </summary>
public sealed class AddedTokenMatcher
{
    readonly SearchValues<char> _firstChars;
    readonly Dictionary<char, AddedToken[]> _byFirstChar;

    public AddedTokenMatcher(IEnumerable<AddedToken> tokens)
    {
        _byFirstChar = tokens
            .Where(t => t.Content.Length > 0)
            .GroupBy(t => t.Content[0])
            .ToDictionary(g => g.Key, g => g.OrderByDescending(t => t.Content.Length).ThenBy(t => t.Id).ToArray());
        _firstChars = SearchValues.Create(_byFirstChar.Keys.ToArray());
        IsEmpty = _byFirstChar.Count == 0;
    }

    public bool IsEmpty { get; }

    /// <summary>The first (leftmost, then longest) token occurring in <paramref name="text"/> at or after <paramref name="from"/>.</summary>
    public bool TryFindNext(ReadOnlySpan<char> text, int from, out int at, out AddedToken token)
    {
        at = -1;
        token = null!;
        if (IsEmpty) return false;
        int i = from;
        while (i < text.Length)
        {
            int k = text[i..].IndexOfAny(_firstChars);
            if (k < 0) return false;
            i += k;
            foreach (var candidate in _byFirstChar[text[i]])
                if (text[i..].StartsWith(candidate.Content, StringComparison.Ordinal))
                {
                    at = i;
                    token = candidate;
                    return true;
                }
            i++;
        }
        return false;
    }
}
