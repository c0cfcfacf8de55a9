using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using MMedExpert.Data.Schema;

namespace MMedExpert.Data.MedSynth;

/// <summary>Accuracy of one baseline rule: fitted and scored on all items, and fitted on sft+rl, scored on val+test.</summary>
public sealed record BaselineScore(double InSample, double? HeldOut);

/// <summary>
/// The generator's report: counts, and the accuracies of the best possible rules on each modality alone versus the
/// full-information rule. The single-modality rules are Bayes-optimal on the guideline's findings of that modality: for
/// each (specialty, finding 1, finding 2) they answer the most frequent diagnosis (ties: first in the table). Other
/// details of the text and image (age, sex, vitals, lesion kind, laterality, density) are drawn independently of the
/// answer, so they cannot help. The findings are read back from the written text (<see cref="VignetteReader"/>) and from
/// the drawn scene, not taken from the latent case, and the full rule applies the guideline table to those readings.
/// </summary>
public sealed record SynthesisReport(
    MedSynthOptions Options,
    IReadOnlyDictionary<string, int> Splits,
    IReadOnlyDictionary<string, int> Specialties,
    IReadOnlyDictionary<string, int> Perspectives,
    IReadOnlyDictionary<string, int> AnswerLetters,
    IReadOnlyDictionary<string, int> OptionsPerItem,
    double Chance,
    double MajorityLetter,
    BaselineScore TextOnly,
    BaselineScore ImageOnly,
    double FullRule,
    double TextReadbackAgreement,
    double ImageReadbackAgreement)
{
    sealed record Row(MedItem Item, string Diagnosis, bool Image1, bool Image2, bool Clinical1, bool Clinical2, bool Train, string TextKey);

    public static SynthesisReport Compute(IReadOnlyList<GeneratedItem> items, MedSynthOptions o)
    {
        var rows = items.Select(g =>
        {
            var (c1, c2) = VignetteReader.Read(g.Item.Specialty, g.Item.Question);
            // With an imaging report the text also states the image findings, so the text-only rule reads them too.
            var report = VignetteReader.ReadReport(g.Item.Specialty, g.Item.Question);
            return new Row(g.Item, g.Item.AnswerText, g.SceneImage1, g.SceneImage2, c1, c2,
                g.Item.Split is Vocabulary.Sft or Vocabulary.Rl, $"{g.Item.Specialty}|{c1}|{c2}|{report}");
        }).ToList();

        double textAgree = items.Zip(rows).Average(p => p.First.Latent.Clinical1 == p.Second.Clinical1 && p.First.Latent.Clinical2 == p.Second.Clinical2 ? 1.0 : 0.0);
        double imageAgree = items.Zip(rows).Average(p => p.First.Latent.Image1 == p.Second.Image1 && p.First.Latent.Image2 == p.Second.Image2 ? 1.0 : 0.0);

        Func<Row, string> textKey = r => r.TextKey;
        Func<Row, string> imageKey = r => $"{r.Item.Specialty}|{r.Image1}|{r.Image2}";

        var letters = rows.GroupBy(r => r.Item.Answer).OrderByDescending(g => g.Count()).ThenBy(g => g.Key, StringComparer.Ordinal).First().Key;
        double majorityLetter = rows.Average(r => r.Item.Answer == letters ? 1.0 : 0.0);
        double full = rows.Average(r =>
            Scenario.For(r.Item.Specialty).Diagnose(r.Image1, r.Clinical1, r.Image2, r.Clinical2) == r.Diagnosis ? 1.0 : 0.0);

        return new SynthesisReport(o,
            Count(rows, r => r.Item.Split, Vocabulary.Splits),
            Count(rows, r => r.Item.Specialty, Vocabulary.Specialties),
            Count(rows, r => r.Item.Perspective, Vocabulary.Perspectives),
            Count(rows, r => r.Item.Answer, Vocabulary.OptionLetters),
            Count(rows, r => r.Item.Options.Count.ToString(), ["4", "5"]),
            rows.Average(r => 1.0 / r.Item.Options.Count),
            majorityLetter,
            Baseline(rows, textKey), Baseline(rows, imageKey), full, textAgree, imageAgree);
    }

    static IReadOnlyDictionary<string, int> Count(List<Row> rows, Func<Row, string> key, IEnumerable<string> order)
    {
        var d = new Dictionary<string, int>();
        foreach (var k in order) d[k] = rows.Count(r => key(r) == k);
        return d;
    }

    /// <summary>Most frequent diagnosis per feature key among <paramref name="fit"/>; ties go to the guideline table order.</summary>
    static Dictionary<string, string> Fit(IEnumerable<Row> fit, Func<Row, string> key) =>
        fit.GroupBy(key).ToDictionary(g => g.Key, g =>
        {
            var table = Scenario.For(g.First().Item.Specialty).Diagnoses;
            return g.GroupBy(r => r.Diagnosis).OrderByDescending(x => x.Count()).ThenBy(x => Array.IndexOf(table, x.Key)).First().Key;
        });

    static double Score(IEnumerable<Row> eval, Dictionary<string, string> rule, Func<Row, string> key) =>
        eval.Average(r => rule.TryGetValue(key(r), out var dx) && dx == r.Diagnosis ? 1.0 : 0.0);

    static BaselineScore Baseline(List<Row> rows, Func<Row, string> key)
    {
        double inSample = Score(rows, Fit(rows, key), key);
        var train = rows.Where(r => r.Train).ToList();
        var heldOut = rows.Where(r => !r.Train).ToList();
        double? held = train.Count > 0 && heldOut.Count > 0 ? Score(heldOut, Fit(train, key), key) : null;
        return new BaselineScore(inSample, held);
    }

    static double R(double v) => Math.Round(v, 4);

    /// <summary>Indented JSON with a fixed layout (no timings), so the same data gives the same bytes.</summary>
    public string ToJson()
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            w.WriteString("generator", "medsynth");
            w.WriteNumber("n", Options.N);
            w.WriteNumber("seed", Options.Seed);
            w.WriteNumber("difficulty", Options.Difficulty);
            w.WriteNumber("image_size", Options.ImageSize);
            w.WriteBoolean("imaging_report", Options.ImagingReport);
            foreach (var (name, counts) in new[] { ("splits", Splits), ("specialties", Specialties), ("perspectives", Perspectives),
                         ("answer_letters", AnswerLetters), ("options_per_item", OptionsPerItem) })
            {
                w.WriteStartObject(name);
                foreach (var (k, v) in counts) w.WriteNumber(k, v);
                w.WriteEndObject();
            }
            w.WriteStartObject("baselines");
            w.WriteNumber("chance", R(Chance));
            w.WriteNumber("majority_letter", R(MajorityLetter));
            foreach (var (name, b) in new[] { ("text_only", TextOnly), ("image_only", ImageOnly) })
            {
                w.WriteStartObject(name);
                w.WriteNumber("in_sample", R(b.InSample));
                if (b.HeldOut is double h) w.WriteNumber("held_out", R(h)); else w.WriteNull("held_out");
                w.WriteEndObject();
            }
            w.WriteNumber("full_rule", R(FullRule));
            w.WriteEndObject();
            w.WriteStartObject("readback");
            w.WriteNumber("text_findings_agree", R(TextReadbackAgreement));
            w.WriteNumber("image_findings_agree", R(ImageReadbackAgreement));
            w.WriteEndObject();
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(ms.ToArray()) + "\n";
    }

    /// <summary>A few lines for the console.</summary>
    public string Summary() =>
        $"MedSynth: {Options.N} items (seed {Options.Seed}, difficulty {Options.Difficulty}, {Options.ImageSize} px{(Options.ImagingReport ? ", imaging report in the text" : "")}); " +
        $"splits {string.Join(", ", Splits.Select(kv => $"{kv.Key} {kv.Value}"))}\n" +
        $"  chance {Chance:P1}, majority letter {MajorityLetter:P1}\n" +
        $"  text-only rule  {TextOnly.InSample:P1} in-sample, {(TextOnly.HeldOut is double t ? t.ToString("P1") : "n/a")} held-out\n" +
        $"  image-only rule {ImageOnly.InSample:P1} in-sample, {(ImageOnly.HeldOut is double i ? i.ToString("P1") : "n/a")} held-out\n" +
        $"  full rule (text + image) {FullRule:P1}; read-back agreement text {TextReadbackAgreement:P1}, image {ImageReadbackAgreement:P1}";
}
