namespace MMedExpert.Data.Benchmarks;

/// <summary>Names of the grouping fields that evaluation reports accuracy by.</summary>
public static class GroupKeys
{
    public const string Specialty = "specialty";
    public const string BodySystem = "body_system";
    public const string Modality = "modality";
    public const string QuestionType = "question_type";
    public const string MedicalTask = "medical_task";
    public const string Dataset = "dataset";
}

/// <summary>
/// One multiple-choice evaluation item, whatever benchmark it came from: question, options by letter, the correct
/// letter, absolute image paths, and the grouping fields the benchmark provides (see <see cref="GroupKeys"/>).
/// <see cref="QuestionListsOptions"/> is true when the question text already spells out the choices (MedXpertQA), so a
/// prompt must not list them twice.
/// </summary>
public sealed record EvalItem(
    string Id,
    string Question,
    IReadOnlyDictionary<string, string> Options,
    string Answer,
    IReadOnlyList<string> ImagePaths,
    string Benchmark,
    IReadOnlyDictionary<string, string> Groups,
    bool QuestionListsOptions = false)
{
    public string AnswerText => Options[Answer];
    public string? Group(string key) => Groups.TryGetValue(key, out var v) ? v : null;
}
