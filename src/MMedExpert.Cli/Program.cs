using System.CommandLine;
using MMedExpert.Cli;
using MMedExpert.Cli.Commands;

// `mmx`: the command-line entry point. Each command lives in its own file under Commands/; this file only lists them.
var root = new RootCommand("MMedExpert: medical vision-language reasoning (Qwen2.5-VL, DSA, GBA, conflict-aware merging) on TorchSharp.");
CommandKit.AddGlobalOptions(root);

root.Subcommands.Add(InfoCommand.Create());
root.Subcommands.Add(DataCommand.Create());

return CommandKit.Run(root, args);
