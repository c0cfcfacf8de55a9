using MMedExpert.Data.Benchmarks;

namespace MMedExpert.Data.Eval;

/// <summary>The user text of an evaluation item for the chat template (the images go in as image parts beside it).</summary>
public static class EvalPrompt
{
    public const string Instruction =
        "Think through the case step by step inside <think></think>, then give only the letter of the correct option inside <answer></answer>.";

    public static string UserText(EvalItem item)
    {
        if (item.QuestionListsOptions) return $"{item.Question}\n\n{Instruction}";
        var options = string.Join("\n", item.Options.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => $"{kv.Key}. {kv.Value}"));
        return $"{item.Question}\n\nOptions:\n{options}\n\n{Instruction}";
    }
}
