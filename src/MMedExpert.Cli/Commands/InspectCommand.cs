using System.CommandLine;
using MMedExpert.Core.IO;

namespace MMedExpert.Cli.Commands;

/// <summary>`mmx inspect PATH`: the tensors of a .safetensors file, a sharded index or a checkpoint directory.</summary>
public static class InspectCommand
{
    public static Command Create()
    {
        var path = new Argument<string>("path") { Description = "A .safetensors file, a model.safetensors.index.json, or a directory" };
        var json = new Option<bool>("--json") { Description = "Print one JSON object" };
        var cmd = new Command("inspect", "List the tensors of a safetensors file, sharded index or checkpoint directory (name, dtype, shape, bytes)");
        cmd.Arguments.Add(path);
        cmd.Options.Add(json);
        cmd.SetAction(parse =>
        {
            using var ckpt = Checkpoint.Open(parse.GetValue(path)!);
            var tensors = ckpt.Files
                .SelectMany(f => f.Entries.Select(e => (File: Path.GetFileName(f.Path), Entry: e)))
                .OrderBy(x => x.Entry.Name, StringComparer.Ordinal).ToList();
            long totalBytes = tensors.Sum(t => t.Entry.ByteCount);
            long totalParams = tensors.Sum(t => t.Entry.ElementCount);
            if (parse.GetValue(json))
            {
                CommandKit.WriteJson(new
                {
                    source = ckpt.Source,
                    files = ckpt.Files.Select(f => new { path = f.Path, tensors = f.Entries.Count, bytes = f.DataBytes, metadata = f.Metadata }),
                    tensors = tensors.Select(t => new { name = t.Entry.Name, dtype = t.Entry.DType.ToString(), shape = t.Entry.Shape, bytes = t.Entry.ByteCount, file = t.File }),
                    total_tensors = tensors.Count,
                    total_parameters = totalParams,
                    total_bytes = totalBytes,
                });
                return 0;
            }
            int width = Math.Max(4, tensors.Count == 0 ? 4 : tensors.Max(t => t.Entry.Name.Length));
            foreach (var (file, e) in tensors)
                Console.WriteLine($"{e.Name.PadRight(width)}  {e.DType,-7} [{string.Join(", ", e.Shape)}]  {e.ByteCount} bytes" + (ckpt.Files.Count > 1 ? $"  {file}" : ""));
            Console.WriteLine($"total: {tensors.Count} tensors, {totalParams:N0} parameters, {totalBytes:N0} bytes in {ckpt.Files.Count} file(s)");
            return 0;
        });
        return cmd;
    }
}
