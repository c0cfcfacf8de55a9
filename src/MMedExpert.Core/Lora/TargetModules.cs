using System.Text.RegularExpressions;

namespace MMedExpert.Core.Lora;

/// <summary>
/// Which linear layers get an adapter, with PEFT's matching rules: a list of names matches a module whose path equals a
/// name or ends with "." + name; a regex must match the whole path; "all-linear" matches every linear but the output
/// layer (<c>lm_head</c>).
/// </summary>
public sealed class TargetModules
{
    /// <summary>PEFT's special value that selects every linear layer except the output layer.</summary>
    public const string AllLinearKeyword = "all-linear";

    /// <summary>The language model's attention and MLP projections (Qwen2 names).</summary>
    public static TargetModules LanguageModelDefault { get; } =
        FromNames("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj");

    public static TargetModules AllLinear { get; } = new(null, null, allLinear: true);

    public IReadOnlyList<string>? Names { get; }
    public string? Pattern { get; }
    public bool IsAllLinear { get; }
    readonly Regex? regex;

    TargetModules(IReadOnlyList<string>? names, string? pattern, bool allLinear)
    {
        Names = names;
        Pattern = pattern;
        IsAllLinear = allLinear;
        // PEFT uses Python's re.fullmatch: anchor at both ends (\z, since $ would also match before a final newline).
        if (pattern != null) regex = new Regex($"^(?:{pattern})\\z", RegexOptions.CultureInvariant);
    }

    public static TargetModules FromNames(params string[] names)
    {
        if (names.Length == 0) throw new LoraException("target_modules: the list of module names is empty");
        foreach (var n in names)
            if (string.IsNullOrWhiteSpace(n)) throw new LoraException("target_modules: empty module name in the list");
        return new TargetModules(names.ToArray(), null, false);
    }

    public static TargetModules FromRegex(string pattern)
    {
        if (pattern == AllLinearKeyword) return AllLinear;
        try { return new TargetModules(null, pattern, false); }
        catch (ArgumentException e) { throw new LoraException($"target_modules: invalid regular expression '{pattern}': {e.Message}"); }
    }

    /// <summary>True when the module at <paramref name="path"/> is targeted.</summary>
    public bool Matches(string path)
    {
        if (IsAllLinear) return path != "lm_head" && !path.EndsWith(".lm_head", StringComparison.Ordinal);
        if (regex != null) return regex.IsMatch(path);
        foreach (var n in Names!)
            if (path == n || path.EndsWith("." + n, StringComparison.Ordinal)) return true;
        return false;
    }

    /// <summary>Vision-tower modules (Qwen2.5-VL: <c>visual.*</c> or <c>model.visual.*</c>), excluded unless asked for.</summary>
    public static bool IsVision(string path) =>
        path.StartsWith("visual.", StringComparison.Ordinal) || path.StartsWith("model.visual.", StringComparison.Ordinal);

    /// <summary>The regex (PEFT <c>exclude_modules</c>) that describes <see cref="IsVision"/>.</summary>
    public const string VisionPattern = @"(model\.)?visual\..*";

    public override string ToString() =>
        IsAllLinear ? AllLinearKeyword : Pattern ?? "[" + string.Join(", ", Names!) + "]";
}
