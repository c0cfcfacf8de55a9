using MMedExpert.Core;
using MMedExpert.Data.Schema;

namespace MMedExpert.Cli.Commands;

/// <summary>Where the training commands read MMedExpert items from (the item → sample mapping is Data's MedItemSamples).</summary>
public static class MedItemData
{
    /// <summary>
    /// The items of <paramref name="path"/>: a JSONL file, or a data folder whose <c>&lt;split&gt;.jsonl</c> is read, with
    /// the folder their image paths start from. With <paramref name="specialty"/>, only that specialty's items; none left
    /// is an error naming the file.
    /// </summary>
    public static (IReadOnlyList<MedItem> Items, string File, string BaseDir) Load(string path, string split, string? specialty = null)
    {
        string file = Directory.Exists(path) ? Path.Combine(path, split + ".jsonl") : path;
        if (!File.Exists(file)) throw new MmxException($"{file}: data file not found (give a .jsonl file or a folder with {split}.jsonl)");
        IReadOnlyList<MedItem> items = MedItemLoader.Load(file).Items;
        if (specialty != null) items = items.Where(i => i.Specialty == specialty).ToList();
        if (items.Count == 0)
            throw new MmxException($"{file}: no items{(specialty is null ? "" : $" of specialty '{specialty}'")}");
        return (items, file, Path.GetDirectoryName(Path.GetFullPath(file))!);
    }
}
