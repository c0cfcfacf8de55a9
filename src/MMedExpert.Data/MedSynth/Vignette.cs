using System.Globalization;
using MMedExpert.Data.Schema;

namespace MMedExpert.Data.MedSynth;

/// <summary>The case text of an item, the two clinical key findings phrased with their values, and the eye examined
/// (fundus cases only), which the fundus scene follows so that text and image agree.</summary>
public sealed record VignetteText(string Text, string Clinical1Phrase, string Clinical2Phrase, string? Eye = null);

/// <summary>
/// Writes the clinical vignette (age, sex, history, vital signs) from the two clinical findings of the guideline plus
/// nuisance details drawn independently of the answer. Difficulty moves the values towards the thresholds and adds
/// irrelevant history; the values never cross a threshold, so the text always determines the two findings.
/// </summary>
public static class Vignette
{
    // The thresholds of the synthetic guidelines; VignetteReader and the reasoning traces use the same numbers.
    public const double AdultFeverC = 38.0;
    public const int HeavySmokingPackYears = 20;
    public const int InfantMonths = 24;
    public const double PediatricFeverC = 38.5;
    public const double DiabetesHbA1c = 6.5;
    public const int SevereSystolic = 160, SevereDiastolic = 100;
    public const int OlderAge = 50;
    public const int RapidGrowthMonths = 6;

    static readonly CultureInfo Inv = CultureInfo.InvariantCulture;
    static double Lerp(double a, double b, double t) => a + (b - a) * t;
    static string F1(double v) => v.ToString("F1", Inv);

    /// <summary>"A" or "An" before a spoken number ("An 8-year-old", "An 11-month-old", "An 83-year-old").</summary>
    static string Article(int n) => n == 8 || n == 11 || n == 18 || (n >= 80 && n <= 89) ? "An" : "A";

    static readonly string[] Distractors =
    [
        "hypothyroidism on levothyroxine", "osteoarthritis of the knees", "gastro-oesophageal reflux", "seasonal allergic rhinitis",
        "an appendectomy in childhood", "a fractured wrist two years ago", "migraine without aura", "mild iron-deficiency anaemia",
        "a penicillin allergy", "carpal tunnel syndrome",
    ];

    static readonly string[] PediatricDistractors =
    [
        "mild eczema", "a penicillin allergy", "recurrent otitis media", "up-to-date immunisations", "an older sibling with asthma",
        "a normal newborn hearing screen", "iron-deficiency anaemia treated last year",
    ];

    /// <summary>0–3 irrelevant history items; more with difficulty.</summary>
    static string History(SeededRandom rng, double difficulty, string[] pool, string none)
    {
        int k = rng.Int(0, 1) + (rng.Chance(difficulty) ? rng.Int(1, 2) : 0);
        if (k == 0) return none;
        var picked = new List<string>();
        while (picked.Count < k) { var h = rng.Pick(pool); if (!picked.Contains(h)) picked.Add(h); }
        return string.Join(", ", picked);
    }

    public static VignetteText Write(Scenario scenario, bool clinical1, bool clinical2, double difficulty, SeededRandom rng) =>
        scenario.Specialty switch
        {
            Vocabulary.AdultMedicine => Adult(clinical1, clinical2, difficulty, rng),
            Vocabulary.Pediatrics => Pediatric(clinical1, clinical2, difficulty, rng),
            Vocabulary.BrainSenses => Fundus(clinical1, clinical2, difficulty, rng),
            Vocabulary.OncologySurgery => Oncology(clinical1, clinical2, difficulty, rng),
            _ => throw new ArgumentException($"unknown specialty '{scenario.Specialty}'"),
        };

    static VignetteText Adult(bool febrile, bool heavySmoker, double d, SeededRandom rng)
    {
        double gap = Lerp(0.8, 0.2, d);
        double t = febrile ? rng.Uniform(AdultFeverC + gap, 40.3) : rng.Uniform(36.2, AdultFeverC - gap);
        int g = (int)Math.Round(Lerp(10, 1, d));
        int packs = heavySmoker ? rng.Int(HeavySmokingPackYears + g, 60) : (rng.Chance(0.5) ? 0 : rng.Int(1, HeavySmokingPackYears - g));
        int age = rng.Int(25, 85);
        string sex = rng.Chance(0.5) ? "man" : "woman";
        string symptom = rng.Pick(new[] { "cough", "cough and breathlessness", "cough with pleuritic chest pain", "breathlessness and fatigue" });
        string smoking = packs == 0 ? "never smoked" : $"{packs} pack-years";
        string text =
            $"{Article(age)} {age}-year-old {sex} presents with {rng.Int(2, 21)} days of {symptom}. " +
            $"Temperature {F1(t)} °C, heart rate {rng.Int(62, 118)}/min, respiratory rate {rng.Int(12, 28)}/min, " +
            $"SpO2 {rng.Int(89, 99)}% on room air, blood pressure {rng.Int(100, 150)}/{rng.Int(60, 92)} mmHg. " +
            $"Smoking history: {smoking}. Past medical history: {History(rng, d, Distractors, "unremarkable")}. " +
            "A frontal chest radiograph is shown.";
        string fever = febrile ? $"febrile ({F1(t)} °C)" : $"afebrile ({F1(t)} °C)";
        string smoke = packs == 0 ? "never smoker" : heavySmoker ? $"heavy smoker ({packs} pack-years)" : $"light smoker ({packs} pack-years)";
        return new VignetteText(text, fever, smoke);
    }

    static VignetteText Pediatric(bool infant, bool febrile, double d, SeededRandom rng)
    {
        int n = infant ? rng.Int(2, InfantMonths - 1) : rng.Int((int)Math.Round(Lerp(6, 3, d)), 15);
        string age = infant ? $"{n}-month-old" : $"{n}-year-old";
        double gap = Lerp(0.8, 0.2, d);
        double t = febrile ? rng.Uniform(PediatricFeverC + gap, 40.5) : rng.Uniform(36.3, PediatricFeverC - gap);
        string sex = rng.Chance(0.5) ? "boy" : "girl";
        string complaint = rng.Pick(new[] { "a first seizure", "irritability and vomiting", "an unsteady gait", "drowsiness since the morning", "a new squint" });
        string text =
            $"{Article(n)} {age} {sex} is brought in with {complaint}. Temperature {F1(t)} °C, heart rate {rng.Int(80, 160)}/min. " +
            $"Background: {History(rng, d, PediatricDistractors, "nothing of note")}. An axial brain MRI slice is shown.";
        return new VignetteText(text, infant ? $"infant ({age})" : $"older child ({age})",
            febrile ? $"febrile ({F1(t)} °C)" : $"afebrile ({F1(t)} °C)");
    }

    static VignetteText Fundus(bool diabetic, bool severe, double d, SeededRandom rng)
    {
        double gap = Lerp(1.0, 0.2, d);
        double a1c = diabetic ? rng.Uniform(DiabetesHbA1c + gap, 11.5) : rng.Uniform(4.8, DiabetesHbA1c - gap);
        int g = (int)Math.Round(Lerp(25, 4, d));
        int sys = severe ? rng.Int(SevereSystolic + g, 215) : rng.Int(105, SevereSystolic - g);
        int dia = severe ? rng.Int(90, 125) : rng.Int(60, SevereDiastolic - g / 2 - 1);
        int age = rng.Int(35, 80);
        string sex = rng.Chance(0.5) ? "man" : "woman";
        string eye = rng.Chance(0.5) ? "right" : "left";
        string complaint = rng.Pick(new[] { "blurred vision for several weeks", "floaters in one eye", "a routine eye examination", "headaches and intermittent blurring" });
        // At higher difficulty the history sentence is often left out, so the HbA1c value has to be read against the threshold.
        string history = rng.Chance(1 - d) ? (diabetic ? $" Known type 2 diabetes for {rng.Int(3, 20)} years." : " No known diabetes.") : "";
        string text =
            $"{Article(age)} {age}-year-old {sex} attends with {complaint}. Blood pressure {sys}/{dia} mmHg, HbA1c {F1(a1c)}%.{history} " +
            $"Other history: {History(rng, d, Distractors, "none")}. A fundus photograph of the {eye} eye is shown.";
        return new VignetteText(text, diabetic ? $"diabetic (HbA1c {F1(a1c)}%)" : $"not diabetic (HbA1c {F1(a1c)}%)",
            severe ? $"severe hypertension ({sys}/{dia} mmHg)" : $"no severe hypertension ({sys}/{dia} mmHg)", eye);
    }

    static VignetteText Oncology(bool older, bool rapid, double d, SeededRandom rng)
    {
        int g = (int)Math.Round(Lerp(12, 2, d));
        int age = older ? rng.Int(OlderAge + g, 88) : rng.Int(20, OlderAge - g);
        string sex = rng.Chance(0.5) ? "man" : "woman";
        string site = rng.Pick(new[] { "colonic", "gastric", "uterine", "soft-tissue thigh", "small-bowel" });
        string duration, growth;
        if (rapid)
        {
            int weeks = rng.Int(2, (int)Math.Round(Lerp(12, 22, d)));
            duration = $"noticed {weeks} weeks ago" + (rng.Chance(1 - d) ? " and growing rapidly" : "");
            growth = $"rapid growth ({weeks} weeks)";
        }
        else
        {
            int months = rng.Int((int)Math.Round(Lerp(24, 9, d)), 120);
            string span = months >= 24 && months % 12 == 0 ? $"{months / 12} years" : $"{months} months";
            duration = $"present for {span}" + (rng.Chance(1 - d) ? " and enlarging slowly" : "");
            growth = $"slow growth ({span})";
        }
        string text =
            $"{Article(age)} {age}-year-old {sex} has a {site} mass, {duration}. Other history: {History(rng, d, Distractors, "none")}. " +
            "A biopsy was taken; an H&E section is shown.";
        return new VignetteText(text, older ? $"older patient ({age} years)" : $"younger patient ({age} years)", growth);
    }
}
