using System.CommandLine;
using MMedExpert.Cli.Commands;

namespace MMedExpert.Cli;

/// <summary>The command tree of `mmx`. Each command lives in its own file under Commands/; this file only lists them.</summary>
public static class MmxApp
{
    public static RootCommand Build()
    {
        var root = new RootCommand("MMedExpert: medical vision-language reasoning (Qwen2.5-VL, DSA, GBA, conflict-aware merging) on TorchSharp.");
        CommandKit.AddGlobalOptions(root);
        root.Subcommands.Add(InfoCommand.Create());
        root.Subcommands.Add(InspectCommand.Create());
        root.Subcommands.Add(TokenizeCommand.Create());
        root.Subcommands.Add(TokenizerFixtureCommand.Create());
        root.Subcommands.Add(GenerateCommand.Create());
        root.Subcommands.Add(MergeCommand.Create());
        root.Subcommands.Add(ExportCommand.Create());
        root.Subcommands.Add(BenchCommand.Create());
        root.Subcommands.Add(DsaCommand.Create());
        root.Subcommands.Add(GbaCommand.Create());
        root.Subcommands.Add(DataCommand.Create());
        root.Subcommands.Add(EvalCommand.Create());
        root.Subcommands.Add(ParityCommand.Create());
        root.Subcommands.Add(PretrainCommand.Create());
        root.Subcommands.Add(PipelineCommand.Create());
        root.Subcommands.Add(ServeCommand.Create());
        return root;
    }

    /// <summary>Runs `mmx` with the given arguments (used by Program and by in-process tests).</summary>
    public static int Run(params string[] args) => CommandKit.Run(Build(), args);
}
