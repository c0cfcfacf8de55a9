using System.CommandLine;
using MMedExpert.Core.Runtime;

namespace MMedExpert.Cli.Commands;

/// <summary>`mmx info`: versions, backend, device, threads, CPU features and where the native libraries came from.</summary>
public static class InfoCommand
{
    public static Command Create()
    {
        var json = new Option<bool>("--json") { Description = "Print one JSON object" };
        var cmd = new Command("info", "Show TorchSharp/libtorch versions, backend, device, threads, CPU features, native library paths");
        cmd.Options.Add(json);
        cmd.SetAction(parse =>
        {
            CommandKit.ConfigureTorch(parse);
            var info = TorchRuntime.Describe();
            if (parse.GetValue(json)) CommandKit.WriteJson(info);
            else foreach (var (k, v) in info) Console.WriteLine($"{k,-16} {v}");
            return 0;
        });
        return cmd;
    }
}
