using MMedExpert.Data.Schema;

namespace MMedExpert.Data.MedSynth;

/// <summary>
/// How well a model reads each MedSynth finding: the "Key findings: a; b; c; d." step of its output (the compact trace's
/// first step, <see cref="PerceptionCurriculum.FindingsStep"/>) against the item's own findings. Sixteen findings: the
/// eight image findings (label 2·s + k, as <see cref="ImageFindingLabels"/>) then the eight clinical findings
/// (8 + 2·s + k), for specialty s in <see cref="Scenario.All"/> order and pairing k. A finding is read right when the
/// output names the item's value in its slot; an unparsed output reads every finding wrong.
/// </summary>
public sealed class FindingReadout
{
    public static int Count => 2 * ImageFindingLabels.Count;
    readonly int[] right = new int[Count], seen = new int[Count];

    /// <summary>"adult_medicine: fever (clinical)", for tables.</summary>
    public static string Name(int label)
    {
        bool clinical = label >= ImageFindingLabels.Count;
        var scenario = Scenario.All[label % ImageFindingLabels.Count / 2];
        var pairing = label % 2 == 0 ? scenario.First : scenario.Second;
        return $"{scenario.Specialty}: {(clinical ? pairing.Clinical : pairing.Image).Name} ({(clinical ? "clinical" : "image")})";
    }

    /// <summary>The findings an output names after "Key findings: ", up to the step's closing period; null when absent.</summary>
    public static IReadOnlyList<string>? Named(string output)
    {
        const string head = "Key findings: ";
        int at = output.IndexOf(head, StringComparison.Ordinal);
        if (at < 0) return null;
        int start = at + head.Length, end = output.IndexOf('.', start);
        return output[start..(end < 0 ? output.Length : end)].Split("; ");
    }

    /// <summary>The four (label, read right) pairs of one item's output: image 1, image 2, clinical 1, clinical 2.</summary>
    public static IReadOnlyList<(int Label, bool Right)> Score(MedItem item, string output)
    {
        int s = Scenario.All.ToList().FindIndex(x => x.Specialty == item.Specialty);
        if (s < 0) throw new DataException($"item {item.Id}: '{item.Specialty}' is not a MedSynth specialty");
        var truth = MedItemSamples.CompactFindings(item);
        var named = Named(output);
        int[] labels = [2 * s, 2 * s + 1, ImageFindingLabels.Count + 2 * s, ImageFindingLabels.Count + 2 * s + 1];
        return labels.Select((label, k) => (label, named is not null && k < named.Count && named[k] == truth[k])).ToList();
    }

    public void Add(MedItem item, string output)
    {
        foreach (var (label, ok) in Score(item, output)) { seen[label]++; if (ok) right[label]++; }
    }

    /// <summary>Accuracy per finding (NaN where no item of its specialty was read).</summary>
    public double[] Accuracy() => right.Select((r, i) => seen[i] == 0 ? double.NaN : (double)r / seen[i]).ToArray();
    public int Seen(int label) => seen[label];
}
