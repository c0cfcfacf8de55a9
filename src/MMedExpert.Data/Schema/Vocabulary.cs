namespace MMedExpert.Data.Schema;

/// <summary>The closed value sets of the MMedExpert schema.</summary>
public static class Vocabulary
{
    public const string AdultMedicine = "adult_medicine";
    public const string Pediatrics = "pediatrics";
    public const string BrainSenses = "brain_senses";
    public const string OncologySurgery = "oncology_surgery";

    /// <summary>The four specialties of the paper's experts, in the order used everywhere (reports, merges).</summary>
    public static readonly IReadOnlyList<string> Specialties = [AdultMedicine, Pediatrics, BrainSenses, OncologySurgery];

    public const string Differential = "differential";
    public const string Intuitive = "intuitive";
    public const string Analytical = "analytical";
    public const string Bayesian = "bayesian";

    /// <summary>The four clinical reasoning perspectives of the guideline-based advantages.</summary>
    public static readonly IReadOnlyList<string> Perspectives = [Differential, Intuitive, Analytical, Bayesian];

    public const string Sft = "sft";
    public const string Rl = "rl";
    public const string Val = "val";
    public const string Test = "test";

    /// <summary>Splits: SFT and RL training items are disjoint sets, so RL never revisits SFT targets.</summary>
    public static readonly IReadOnlyList<string> Splits = [Sft, Rl, Val, Test];

    /// <summary>Option letters in order; an item uses a prefix of at least two of them.</summary>
    public static readonly IReadOnlyList<string> OptionLetters = ["A", "B", "C", "D", "E"];
}
