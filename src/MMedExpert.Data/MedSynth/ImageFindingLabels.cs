using MMedExpert.Data.Schema;

namespace MMedExpert.Data.MedSynth;

/// <summary>
/// The image findings of MedSynth items as binary labels for <see cref="MMedExpert.Core.Training.VisionWarmup"/>: two per
/// specialty (the image finding of each pairing), label 2·s + k for specialty s in <see cref="Scenario.All"/> order and
/// pairing k; value true for the finding's "present" wording. Read from the item's key findings, so the labels are the
/// ones its reasoning trace states.
/// </summary>
public static class ImageFindingLabels
{
    public static int Count => Scenario.All.Count * 2;

    /// <summary>"adult_medicine: opacity zone (upper-zone opacity)", for logs and reports.</summary>
    public static string Name(int label)
    {
        var scenario = Scenario.All[label / 2];
        var finding = label % 2 == 0 ? scenario.First.Image : scenario.Second.Image;
        return $"{scenario.Specialty}: {finding.Name} ({finding.WhenTrue})";
    }

    /// <summary>The item's two labels, or null when it is not a MedSynth item (no scenario, or a finding not stated).</summary>
    public static IReadOnlyList<(int Label, bool Value)>? For(MedItem item)
    {
        int s = -1;
        for (int i = 0; i < Scenario.All.Count; i++) if (Scenario.All[i].Specialty == item.Specialty) s = i;
        if (s < 0) return null;
        var scenario = Scenario.All[s];
        bool? first = Read(item, scenario.First.Image), second = Read(item, scenario.Second.Image);
        return first is null || second is null ? null : new[] { (2 * s, first.Value), (2 * s + 1, second.Value) };
    }

    /// <summary>The vision warm-up's samples (image path and labels) of <paramref name="items"/>; null when one is not a single-image MedSynth item.</summary>
    public static List<MMedExpert.Core.Training.ImageLabelSample>? Samples(IEnumerable<MedItem> items, string baseDir)
    {
        var samples = new List<MMedExpert.Core.Training.ImageLabelSample>();
        foreach (var item in items)
        {
            if (For(item) is not { } targets || item.Images.Count != 1) return null;
            samples.Add(new(Path.Combine(baseDir, item.Images[0]), targets));
        }
        return samples;
    }

    private static bool? Read(MedItem item, Finding finding)
    {
        foreach (var f in item.Guideline.KeyFindings)
        {
            if (f.StartsWith(finding.WhenTrue, StringComparison.Ordinal)) return true;
            if (f.StartsWith(finding.WhenFalse, StringComparison.Ordinal)) return false;
        }
        return null;
    }
}
