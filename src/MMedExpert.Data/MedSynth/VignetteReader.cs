using System.Globalization;
using System.Text.RegularExpressions;
using MMedExpert.Data.Schema;

namespace MMedExpert.Data.MedSynth;

/// <summary>
/// Reads the two clinical findings back from an item's text with the guideline's thresholds. The generator's report
/// uses it to check that the text alone carries both findings (and that the full rule then reaches 100%).
/// </summary>
public static partial class VignetteReader
{
    [GeneratedRegex(@"Temperature (\d+\.\d) °C")] private static partial Regex Temperature();
    [GeneratedRegex(@"Smoking history: (never smoked|(\d+) pack-years)")] private static partial Regex Smoking();
    [GeneratedRegex(@"An? (\d+)-(month|year)-old")] private static partial Regex Age();
    [GeneratedRegex(@"Blood pressure (\d+)/(\d+) mmHg")] private static partial Regex Pressure();
    [GeneratedRegex(@"HbA1c (\d+\.\d)%")] private static partial Regex HbA1c();
    [GeneratedRegex(@"(noticed (\d+) weeks ago|present for (\d+) (months|years))")] private static partial Regex Duration();

    static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    static Match Need(Regex r, string text, string what) =>
        r.Match(text) is { Success: true } m ? m : throw new DataException($"MedSynth text has no {what}: \"{text}\"");

    /// <summary>
    /// The two image findings stated by the imaging-report sentence (<see cref="MedSynthOptions.ImagingReport"/>), or null
    /// when the text has none. A report naming a value the scenario does not know is an error.
    /// </summary>
    public static (bool Image1, bool Image2)? ReadReport(string specialty, string text)
    {
        int at = text.IndexOf(MedSynthGenerator.ReportPrefix, StringComparison.Ordinal);
        if (at < 0) return null;
        int end = text.IndexOf('.', at);
        var parts = text[(at + MedSynthGenerator.ReportPrefix.Length)..(end < 0 ? text.Length : end)].Split("; ");
        var sc = Scenario.For(specialty);
        bool Value(Finding f, int k) =>
            k < parts.Length && parts[k] == f.WhenTrue ? true
            : k < parts.Length && parts[k] == f.WhenFalse ? false
            : throw new DataException($"MedSynth imaging report does not state the {f.Name}: \"{text}\"");
        return (Value(sc.First.Image, 0), Value(sc.Second.Image, 1));
    }

    /// <summary>(first clinical finding, second clinical finding) of the scenario, read from the text.</summary>
    public static (bool Clinical1, bool Clinical2) Read(string specialty, string text)
    {
        switch (specialty)
        {
            case Vocabulary.AdultMedicine:
            {
                double t = double.Parse(Need(Temperature(), text, "temperature").Groups[1].Value, Inv);
                var s = Need(Smoking(), text, "smoking history");
                int packs = s.Groups[2].Success ? int.Parse(s.Groups[2].Value, Inv) : 0;
                return (t >= Vignette.AdultFeverC, packs >= Vignette.HeavySmokingPackYears);
            }
            case Vocabulary.Pediatrics:
            {
                var a = Need(Age(), text, "age");
                int months = int.Parse(a.Groups[1].Value, Inv) * (a.Groups[2].Value == "year" ? 12 : 1);
                double t = double.Parse(Need(Temperature(), text, "temperature").Groups[1].Value, Inv);
                return (months < Vignette.InfantMonths, t >= Vignette.PediatricFeverC);
            }
            case Vocabulary.BrainSenses:
            {
                double a1c = double.Parse(Need(HbA1c(), text, "HbA1c").Groups[1].Value, Inv);
                var bp = Need(Pressure(), text, "blood pressure");
                int sys = int.Parse(bp.Groups[1].Value, Inv), dia = int.Parse(bp.Groups[2].Value, Inv);
                return (a1c >= Vignette.DiabetesHbA1c, sys >= Vignette.SevereSystolic || dia >= Vignette.SevereDiastolic);
            }
            case Vocabulary.OncologySurgery:
            {
                var a = Need(Age(), text, "age");
                int age = int.Parse(a.Groups[1].Value, Inv);
                var du = Need(Duration(), text, "duration");
                double months = du.Groups[2].Success
                    ? int.Parse(du.Groups[2].Value, Inv) / 4.345
                    : int.Parse(du.Groups[3].Value, Inv) * (du.Groups[4].Value == "years" ? 12 : 1);
                return (age >= Vignette.OlderAge, months < Vignette.RapidGrowthMonths);
            }
            default: throw new DataException($"unknown specialty '{specialty}'");
        }
    }
}
