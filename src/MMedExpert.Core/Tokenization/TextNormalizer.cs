using System.Text;

namespace MMedExpert.Core.Tokenization;

/// <summary>
/// The NFC normalizer of Qwen2's tokenizer, with a fast path: text whose characters are all below U+0300 is already
/// in NFC (no character there decomposes, and composition needs a following mark or jamo at U+0300 or above), so the
/// common ASCII/Latin-1 case costs one vectorised scan. Lone surrogates, which the reference (Rust strings) cannot
/// hold, become U+FFFD, what their UTF-8 encoding would carry anyway.
/// </summary>
public static class TextNormalizer
{
    public static bool IsTriviallyNfc(ReadOnlySpan<char> text) => text.IndexOfAnyInRange('\u0300', '\uFFFF') < 0;

    public static string Nfc(string text)
    {
        if (IsTriviallyNfc(text)) return text;
        string clean = ReplaceLoneSurrogates(text);
        return clean.IsNormalized(NormalizationForm.FormC) ? clean : clean.Normalize(NormalizationForm.FormC);
    }

    public static string ReplaceLoneSurrogates(string text)
    {
        int i = text.AsSpan().IndexOfAnyInRange('\uD800', '\uDFFF');
        if (i < 0) return text;
        char[]? copy = null;
        for (; i < text.Length; i++)
        {
            char c = text[i];
            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1])) { i++; continue; }
            if (char.IsSurrogate(c)) (copy ??= text.ToCharArray())[i] = '\uFFFD';
        }
        return copy == null ? text : new string(copy);
    }
}
