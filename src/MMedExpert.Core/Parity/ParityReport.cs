namespace MMedExpert.Core.Parity;

/// <summary>
/// How far the project's model is from a Hugging Face reference, stage by stage (in the order data flows through them).
/// <see cref="FirstDivergence"/> names the first stage that is off (null: all within tolerance; in bf16 only the exact
/// stages count, the logits' distance is reported).
/// </summary>
public sealed record ParityReport(
    string Fixture,
    string Dtype,
    /// <summary>The bound on pixel values and logits (null: bf16, reported but not gated).</summary>
    double? Tolerance,
    bool PixelValuesShapeEqual,
    bool ImageGridThwEqual,
    /// <summary>Null when the shapes differ.</summary>
    double? PixelValuesMaxAbsDiff,
    bool PositionIdsEqual,
    bool RopeDeltasEqual,
    double LogitsMaxAbsDiff,
    bool GreedyEqual,
    long[] GreedyIds,
    long[] ReferenceGreedyIds,
    string? FirstDivergence)
{
    public bool Gated => Tolerance is not null;
    public bool Passed => FirstDivergence is null;

    /// <summary>The stage order of <see cref="FirstDivergence"/>.</summary>
    public static readonly IReadOnlyList<string> Stages = new[] { "pixel_values", "position_ids", "rope_deltas", "logits", "greedy" };
}
