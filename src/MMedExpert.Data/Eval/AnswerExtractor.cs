using System.Text.RegularExpressions;
using MMedExpert.Data.Schema;

namespace MMedExpert.Data.Eval;

/// <summary>How a letter was found: in the &lt;answer&gt; tag, as a letter in the visible text, by option text, or not at all.</summary>
public enum ExtractionMethod { AnswerTag, LoneLetter, OptionText, None }

/// <summary>The extracted option letter (null when none or ambiguous), how it was found, and whether the output
/// followed the strict <c>&lt;think&gt;…&lt;/think&gt;&lt;answer&gt;…&lt;/answer&gt;</c> format.</summary>
public sealed record Extraction(string? Letter, ExtractionMethod Method, bool StrictFormat);

/// <summary>
/// Turns a model output into an option letter.
/// 1. If an &lt;answer&gt;…&lt;/answer&gt; tag is present, only its content counts (the last tag): a letter, else an option's text.
/// 2. Otherwise the visible text counts: the output without its &lt;think&gt;…&lt;/think&gt; blocks (an unclosed &lt;think&gt;
///    hides everything after it). A letter mentioned only inside the reasoning is not an answer.
/// Letters are read in this order: the whole text is a letter form ("B", "(b)", "B.", "B) Pneumonia"); an explicit
/// statement ("Answer: B", "the answer is (B)"; the last one wins); a single parenthesised letter "(B)"; a single
/// standalone capital letter (not the article "A ..."). Several different letters at one level are ambiguous → none.
/// Lower-case letters count only where they cannot be an English word (alone, bracketed, or before punctuation).
/// Last resort: the one option whose text appears (an option contained in a longer matching option yields to it).
/// </summary>
public static partial class AnswerExtractor
{
    [GeneratedRegex(@"<answer>(.*?)</answer>", RegexOptions.Singleline | RegexOptions.IgnoreCase)] private static partial Regex AnswerTag();
    [GeneratedRegex(@"<think>.*?</think>", RegexOptions.Singleline | RegexOptions.IgnoreCase)] private static partial Regex ThinkBlock();
    [GeneratedRegex(@"^\s*[\(\[]?\s*([A-Ea-e])\s*[\)\]]?\s*[.:]?\s*$")] private static partial Regex WholeLetter();
    [GeneratedRegex(@"^\s*(?:[\(\[]\s*([A-Ea-e])\s*[\)\]]|([A-Ea-e])\s*[.:)])\s*\S")] private static partial Regex LeadingLetter();
    [GeneratedRegex(@"(?i:final\s+answer|answer|option|choice)\s*(?i:is|:|=|-)?\s*(?i:option\s*|choice\s*)?(?:[\(\[]\s*([A-Ea-e])\s*[\)\]]|([A-E])(?![A-Za-z0-9])|([a-e])(?=\s*(?:$|[.,;:!?)\]])))")]
    private static partial Regex Explicit();
    [GeneratedRegex(@"^\s*(?:,|(?i:and|or)|&|/)\s*(?:[\(\[]\s*[A-Ea-e]\s*[\)\]]|[A-E](?![A-Za-z]))")] private static partial Regex AnotherLetter();
    [GeneratedRegex(@"\(\s*([A-Ea-e])\s*\)")] private static partial Regex Parenthesised();
    [GeneratedRegex(@"(?<![A-Za-z0-9'’\-])([A-E])(?![A-Za-z0-9'’\-])")] private static partial Regex LoneCapital();
    [GeneratedRegex(@"[^a-z0-9]+")] private static partial Regex NonAlnum();

    public static Extraction Extract(string output, IReadOnlyDictionary<string, string> options)
    {
        output ??= "";
        bool strict = ReasoningFormat.IsStrict(output);
        var tags = AnswerTag().Matches(output);
        if (tags.Count > 0)
        {
            string inner = tags[^1].Groups[1].Value;
            string? letter = LetterIn(inner, options) ?? OptionText(inner, options);
            return new Extraction(letter, letter is null ? ExtractionMethod.None : ExtractionMethod.AnswerTag, strict);
        }
        string visible = ThinkBlock().Replace(output, " ");
        int open = visible.IndexOf("<think>", StringComparison.OrdinalIgnoreCase);
        if (open >= 0) visible = visible[..open];
        visible = visible.Replace("</think>", " ", StringComparison.OrdinalIgnoreCase);
        if (LetterIn(visible, options) is string l) return new Extraction(l, ExtractionMethod.LoneLetter, strict);
        if (OptionText(visible, options) is string t) return new Extraction(t, ExtractionMethod.OptionText, strict);
        return new Extraction(null, ExtractionMethod.None, strict);
    }

    static string? Valid(string s, IReadOnlyDictionary<string, string> options)
    {
        string up = s.ToUpperInvariant();
        return options.ContainsKey(up) ? up : null;
    }

    static string? Single(IEnumerable<string?> letters)
    {
        var distinct = letters.Where(l => l != null).Distinct().ToList();
        return distinct.Count == 1 ? distinct[0] : null;
    }

    /// <summary>The letter the text states, or null (none, or several different ones at the same level).</summary>
    static string? LetterIn(string text, IReadOnlyDictionary<string, string> options)
    {
        if (WholeLetter().Match(text) is { Success: true } w) return Valid(w.Groups[1].Value, options);
        if (LeadingLetter().Match(text) is { Success: true } lead)
        {
            // "(A) and (C) …" names two letters; "B. Pneumonia" or "C) Metastases" names one.
            int after = lead.Index + lead.Length - 1;
            if (AnotherLetter().IsMatch(text[after..])) return null;
            return Valid(lead.Groups[1].Success ? lead.Groups[1].Value : lead.Groups[2].Value, options);
        }

        var explicitMatches = Explicit().Matches(text).Where(m => Valid(LetterOf(m), options) != null).ToList();
        if (explicitMatches.Count > 0)
        {
            var last = explicitMatches[^1];
            // "Answer: A, C" or "answer is B or D" names several options: ambiguous.
            if (AnotherLetter().IsMatch(text[(last.Index + last.Length)..])) return null;
            return Valid(LetterOf(last), options);
        }
        var bracketed = Parenthesised().Matches(text).Select(m => Valid(m.Groups[1].Value, options)).Where(l => l != null).ToList();
        if (bracketed.Count > 0) return Single(bracketed);

        // Standalone capitals, after removing option texts (which may contain letters: "Hepatitis B", "Vitamin D").
        string stripped = text;
        foreach (var o in options.Values.OrderByDescending(v => v.Length))
            stripped = stripped.Replace(o, " ", StringComparison.OrdinalIgnoreCase);
        var capitals = LoneCapital().Matches(stripped)
            .Where(m => !(m.Value == "A" && IsArticle(stripped, m.Index)))
            .Select(m => Valid(m.Value, options)).Where(l => l != null).ToList();
        return capitals.Count > 0 ? Single(capitals) : null;
    }

    static string LetterOf(Match m) => m.Groups[1].Success ? m.Groups[1].Value : m.Groups[2].Success ? m.Groups[2].Value : m.Groups[3].Value;

    /// <summary>"A" followed by a lower-case word ("A chest film shows …") is the article, not option A.</summary>
    static bool IsArticle(string text, int index)
    {
        int i = index + 1;
        if (i >= text.Length || text[i] != ' ') return false;
        while (i < text.Length && text[i] == ' ') i++;
        if (i >= text.Length || !char.IsLower(text[i])) return false;
        int j = i;
        while (j < text.Length && char.IsLetter(text[j])) j++;
        return text[i..j] is not ("or" or "and" or "nor" or "vs");   // "A or B" lists letters
    }

    static string Normalize(string s) => " " + NonAlnum().Replace(s.ToLowerInvariant(), " ").Trim() + " ";

    /// <summary>The option whose text appears in the text as whole words; longer options win over options they contain.</summary>
    static string? OptionText(string text, IReadOnlyDictionary<string, string> options)
    {
        string norm = Normalize(text);
        var hits = options.Where(kv => Normalize(kv.Value).Trim().Length > 0 && norm.Contains(Normalize(kv.Value), StringComparison.Ordinal)).ToList();
        var maximal = hits.Where(h => !hits.Any(o => o.Key != h.Key && Normalize(o.Value).Length > Normalize(h.Value).Length
                                                     && Normalize(o.Value).Contains(Normalize(h.Value), StringComparison.Ordinal))).ToList();
        return maximal.Count == 1 ? maximal[0].Key : null;
    }
}
