using MMedExpert.Data.Schema;

namespace MMedExpert.Data.MedSynth;

/// <summary>A binary finding with the words for its two values (index 1 = the "present" value, index 0 = the other).</summary>
public sealed record Finding(string Name, string WhenTrue, string WhenFalse)
{
    public string Describe(bool value) => value ? WhenTrue : WhenFalse;
}

/// <summary>
/// One pairing of the synthetic guideline: an image finding read against a clinical finding. The pairing is
/// "concordant" when both are present or both absent, "discordant" otherwise (an XOR), so neither finding alone says
/// anything about the pairing.
/// </summary>
public sealed record Pairing(string Name, Finding Image, Finding Clinical)
{
    public static bool Discordant(bool image, bool clinical) => image != clinical;
    public static string Word(bool discordant) => discordant ? "discordant" : "concordant";
}

/// <summary>
/// The synthetic guideline of one specialty: an imaging modality, two pairings, and a 2×2 decision table from
/// (first pairing discordant?, second pairing discordant?) to the diagnosis; distractor diagnoses that are never correct
/// fill a fifth option. The table is invented for MedSynth (documented in docs/data.md), not medical advice.
/// </summary>
public sealed record Scenario(
    string Specialty,
    string Modality,
    string ImageNoun,
    Pairing First,
    Pairing Second,
    string[] Diagnoses,
    string[] Distractors,
    string GuidelineName)
{
    /// <summary>Diagnosis index for the two pairings: 2·[first discordant] + [second discordant].</summary>
    public static int DiagnosisIndex(bool firstDiscordant, bool secondDiscordant) =>
        (firstDiscordant ? 2 : 0) + (secondDiscordant ? 1 : 0);

    /// <summary>The inverse of <see cref="DiagnosisIndex"/>: whether each pairing is discordant for a diagnosis index.</summary>
    public static (bool FirstDiscordant, bool SecondDiscordant) Pairings(int diagnosisIndex) =>
        (diagnosisIndex >= 2, diagnosisIndex % 2 == 1);

    /// <summary>The full-information rule: the diagnosis from the four findings.</summary>
    public string Diagnose(bool image1, bool clinical1, bool image2, bool clinical2) =>
        Diagnoses[DiagnosisIndex(Pairing.Discordant(image1, clinical1), Pairing.Discordant(image2, clinical2))];

    public static readonly Scenario AdultMedicine = new(
        Vocabulary.AdultMedicine, "X-ray", "chest radiograph",
        new Pairing("zone–fever pairing",
            new Finding("opacity zone", "upper-zone opacity", "lower-zone opacity"),
            new Finding("fever", "febrile", "afebrile")),
        new Pairing("morphology–smoking pairing",
            new Finding("opacity morphology", "solitary well-defined nodule", "multiple ill-defined patchy opacities"),
            new Finding("smoking", "heavy smoker", "light or never smoker")),
        ["Lobar pneumonia", "Miliary tuberculosis", "Primary lung carcinoma", "Pulmonary metastases"],
        ["Spontaneous pneumothorax", "Pulmonary sarcoidosis"],
        "MedSynth chest guideline");

    public static readonly Scenario Pediatrics = new(
        Vocabulary.Pediatrics, "MRI", "axial brain MRI",
        new Pairing("location–age pairing",
            new Finding("lesion location", "periventricular lesion", "cortical lesion"),
            new Finding("age group", "infant", "older child")),
        new Pairing("signal–fever pairing",
            new Finding("lesion signal", "hyperintense lesion", "hypointense lesion"),
            new Finding("fever", "febrile", "afebrile")),
        ["Periventricular leukomalacia", "Congenital CMV infection", "Acute disseminated encephalomyelitis", "Pilocytic astrocytoma"],
        ["Medulloblastoma", "Tuberous sclerosis"],
        "MedSynth paediatric neuro-imaging guideline");

    public static readonly Scenario BrainSenses = new(
        Vocabulary.BrainSenses, "Fundus photography", "fundus photograph",
        new Pairing("location–diabetes pairing",
            new Finding("lesion location", "peripapillary lesions", "macular lesions"),
            new Finding("diabetes", "diabetic", "not diabetic")),
        new Pairing("count–pressure pairing",
            new Finding("lesion count", "numerous lesions", "few lesions"),
            new Finding("blood pressure", "severe hypertension", "no severe hypertension")),
        ["Diabetic retinopathy", "Hypertensive retinopathy", "Central retinal vein occlusion", "Papilledema"],
        ["Retinal detachment", "Age-related macular degeneration"],
        "MedSynth fundus guideline");

    public static readonly Scenario OncologySurgery = new(
        Vocabulary.OncologySurgery, "Histopathology", "H&E biopsy section",
        new Pairing("nuclear size–age pairing",
            new Finding("nuclear size", "enlarged pleomorphic nuclei", "small uniform nuclei"),
            new Finding("age", "older patient", "younger patient")),
        new Pairing("cell shape–growth pairing",
            new Finding("cell shape", "spindle-shaped cells", "round polygonal cells"),
            new Finding("growth", "rapid growth", "slow growth")),
        ["Adenocarcinoma", "Leiomyosarcoma", "Tubular adenoma", "Leiomyoma"],
        ["Diffuse large B-cell lymphoma", "Hamartoma"],
        "MedSynth surgical pathology guideline");

    /// <summary>The four scenarios in <see cref="Vocabulary.Specialties"/> order.</summary>
    public static readonly IReadOnlyList<Scenario> All = [AdultMedicine, Pediatrics, BrainSenses, OncologySurgery];

    public static Scenario For(string specialty) =>
        All.FirstOrDefault(s => s.Specialty == specialty) ?? throw new ArgumentException($"unknown specialty '{specialty}'");
}
