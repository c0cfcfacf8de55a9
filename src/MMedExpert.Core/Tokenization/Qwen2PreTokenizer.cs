using System.Globalization;

namespace MMedExpert.Core.Tokenization;

/// <summary>
/// Splits normalized text into the pieces Qwen2's `Split` pre-tokenizer produces with behaviour `Isolated`:
/// <code>(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+</code>
/// Written as a scanner rather than a Regex because it is the hot loop of encoding; each step below is one alternative
/// of the pattern, tried in order at the current position with the backtracking a regex engine would do. Every character
/// is matched by some alternative, so the pieces tile the text (Isolated keeps no gaps to emit).
/// Character classes follow the reference (Oniguruma, Unicode): \p{L} = categories Lu Ll Lt Lm Lo, \p{N} = Nd Nl No,
/// \s = the Unicode White_Space property.
/// </summary>
public static class Qwen2PreTokenizer
{
    /// <summary>The pattern string as it appears in Qwen2-family tokenizer.json files; any other pattern is rejected.</summary>
    public const string Pattern =
        @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    const byte Other = 0, Letter = 1, Number = 2, Space = 3;

    /// <summary>Class of each BMP code unit (surrogates count as Other; pairs are classified by their code point).</summary>
    static readonly byte[] BmpClass = BuildBmpClasses();

    static byte[] BuildBmpClasses()
    {
        var t = new byte[65536];
        for (int c = 0; c < 65536; c++)
            t[c] = char.IsSurrogate((char)c) ? Other : ClassifyCategory(c);
        return t;
    }

    static byte ClassifyCategory(int codePoint)
    {
        if (IsWhiteSpaceProperty(codePoint)) return Space;
        return CharUnicodeInfo.GetUnicodeCategory(codePoint) switch
        {
            UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
                or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter => Letter,
            UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber => Number,
            _ => Other,
        };
    }

    /// <summary>Unicode's White_Space property (what Oniguruma's \s matches in Unicode mode); all are in the BMP.</summary>
    static bool IsWhiteSpaceProperty(int c) =>
        c is (>= 0x09 and <= 0x0D) or 0x20 or 0x85 or 0xA0 or 0x1680 or (>= 0x2000 and <= 0x200A)
            or 0x2028 or 0x2029 or 0x202F or 0x205F or 0x3000;

    /// <summary>Class and width (in UTF-16 code units) of the code point at <paramref name="i"/>.</summary>
    static byte ClassAt(ReadOnlySpan<char> s, int i, out int width)
    {
        char c = s[i];
        if (char.IsHighSurrogate(c) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
        {
            width = 2;
            int cp = char.ConvertToUtf32(c, s[i + 1]);
            return ClassifyCategory(cp);
        }
        width = 1;
        return BmpClass[c];
    }

    static int EndOfRun(ReadOnlySpan<char> s, int i, byte cls)
    {
        while (i < s.Length && ClassAt(s, i, out int w) == cls) i += w;
        return i;
    }

    static int EndOfLineBreaks(ReadOnlySpan<char> s, int i)
    {
        while (i < s.Length && s[i] is '\r' or '\n') i++;
        return i;
    }

    /// <summary>Folds the letters of the contraction alternatives case-insensitively, as Oniguruma's (?i:) does:
    /// ASCII case plus U+017F LATIN SMALL LETTER LONG S, whose case fold is 's' (Oniguruma matches /s/i against 'ſ':
    /// kkos/oniguruma#71, k-takata/Onigmo#97). .NET's Regex and the JavaScript port (ASCII classes) do not; the
    /// reference tokenizers library uses Oniguruma.</summary>
    static char Fold(char c) => c == '\u017F' ? 's' : (c is >= 'A' and <= 'Z' ? (char)(c + 32) : c);

    /// <summary>End (exclusive) of the piece starting at <paramref name="i"/>; <paramref name="i"/> &lt; s.Length.</summary>
    public static int NextPieceEnd(ReadOnlySpan<char> s, int i)
    {
        int n = s.Length;
        char c = s[i];

        // (?i:'s|'t|'re|'ve|'m|'ll|'d)
        if (c == '\'' && i + 1 < n)
        {
            char d = Fold(s[i + 1]);
            if (d is 's' or 't' or 'm' or 'd') return i + 2;
            if (i + 2 < n)
            {
                char e = Fold(s[i + 2]);
                if ((d is 'r' or 'v' && e == 'e') || (d == 'l' && e == 'l')) return i + 3;
            }
        }

        byte cls = ClassAt(s, i, out int width);

        // [^\r\n\p{L}\p{N}]?\p{L}+
        if (cls == Letter) return EndOfRun(s, i + width, Letter);
        if (cls != Number && c is not ('\r' or '\n') && i + width < n && ClassAt(s, i + width, out _) == Letter)
            return EndOfRun(s, i + width, Letter);

        // \p{N}
        if (cls == Number) return i + width;

        // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
        if (cls == Other) return EndOfLineBreaks(s, EndOfRun(s, i + width, Other));
        if (c == ' ' && i + 1 < n && ClassAt(s, i + 1, out int w1) == Other)
            return EndOfLineBreaks(s, EndOfRun(s, i + 1 + w1, Other));

        // Only whitespace is left. \s*[\r\n]+ : the run up to and including its last line break.
        int runEnd = EndOfRun(s, i, Space);
        for (int k = runEnd - 1; k >= i; k--)
            if (s[k] is '\r' or '\n') return k + 1;

        // \s+(?!\S) : the whole run at the end of text, else the run less its last character (which then joins the
        // following word); \s+ : a single whitespace character before a non-space.
        if (runEnd == n) return runEnd;
        return runEnd - i >= 2 ? runEnd - 1 : runEnd;
    }

    /// <summary>All pieces of <paramref name="text"/> as (start, length), in order.</summary>
    public static List<(int Start, int Length)> Split(ReadOnlySpan<char> text)
    {
        var pieces = new List<(int, int)>();
        for (int i = 0; i < text.Length;)
        {
            int end = NextPieceEnd(text, i);
            pieces.Add((i, end - i));
            i = end;
        }
        return pieces;
    }
}
