using MMedExpert.Core;
using MMedExpert.Core.Training;
using MMedExpert.Core.Training.Grpo;
using MMedExpert.Data.Benchmarks;
using MMedExpert.Data.Eval;
using MMedExpert.Data.Schema;

namespace MMedExpert.Cli.Commands;

/// <summary>
/// MMedExpert JSONL items as the trainers see them. The user turn is exactly the evaluation prompt (question, lettered
/// options, the think/answer instruction) so that training and evaluation ask the same way; the images go in front of it.
/// </summary>
public static class MedItemSamples
{
    /// <summary>
    /// The items of <paramref name="path"/>: a JSONL file, or a data folder whose <c>&lt;split&gt;.jsonl</c> is read.
    /// With <paramref name="specialty"/>, only that specialty's items; none left is an error naming the file.
    /// </summary>
    public static (IReadOnlyList<MedItem> Items, string File) Load(string path, string split, string? specialty = null)
    {
        string file = Directory.Exists(path) ? Path.Combine(path, split + ".jsonl") : path;
        if (!File.Exists(file)) throw new MmxException($"{file}: data file not found (give a .jsonl file or a folder with {split}.jsonl)");
        var items = MedItemLoader.Load(file).Items;
        if (specialty != null) items = items.Where(i => i.Specialty == specialty).ToList();
        if (items.Count == 0)
            throw new MmxException($"{file}: no items{(specialty is null ? "" : $" of specialty '{specialty}'")}");
        return (items, file);
    }

    /// <summary>Folder the item's relative image paths start from.</summary>
    public static string BaseDir(string file) => Path.GetDirectoryName(Path.GetFullPath(file))!;

    /// <summary>An SFT sample: images, question and options as the user turn, the reasoning trace as the assistant turn.</summary>
    public static VisionChatSample Sft(MedItem item, string baseDir)
    {
        var e = MedSynthBench.ToEvalItem(item, baseDir);
        return new VisionChatSample(e.ImagePaths, EvalPrompt.UserText(e), item.Reasoning);
    }

    /// <summary>An RL prompt with the annotations its guideline rewards read.</summary>
    public static RlSample Rl(MedItem item, string baseDir)
    {
        var e = MedSynthBench.ToEvalItem(item, baseDir);
        return new RlSample(new VisionChatSample(e.ImagePaths, EvalPrompt.UserText(e)), RewardAnnotations.From(item));
    }
}
