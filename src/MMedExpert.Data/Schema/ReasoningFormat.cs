using System.Text.RegularExpressions;

namespace MMedExpert.Data.Schema;

/// <summary>
/// The reasoning format of the project: exactly <c>&lt;think&gt;…&lt;/think&gt;&lt;answer&gt;…&lt;/answer&gt;</c>, with
/// only white space around and between the two blocks, and non-empty contents.
/// </summary>
public static partial class ReasoningFormat
{
    [GeneratedRegex(@"^\s*<think>(?<think>.*?)</think>\s*<answer>(?<answer>.*?)</answer>\s*$", RegexOptions.Singleline)]
    private static partial Regex Strict();

    /// <summary>Splits a strictly formatted text into its think and answer contents; false when the format is not followed.</summary>
    public static bool TryParse(string text, out string think, out string answer)
    {
        var m = Strict().Match(text ?? "");
        bool ok = m.Success && m.Groups["think"].Value.Trim().Length > 0 && m.Groups["answer"].Value.Trim().Length > 0
                  && !m.Groups["think"].Value.Contains("<think>") && !m.Groups["answer"].Value.Contains("<answer>");
        think = ok ? m.Groups["think"].Value : "";
        answer = ok ? m.Groups["answer"].Value.Trim() : "";
        return ok;
    }

    public static bool IsStrict(string text) => TryParse(text, out _, out _);

    /// <summary>Wraps a trace and an answer in the format.</summary>
    public static string Compose(string think, string answer) => $"<think>{think}</think><answer>{answer}</answer>";
}
