using System.CommandLine;
using MMedExpert.Cli.Commands.Bench;

namespace MMedExpert.Cli.Commands;

/// <summary>`mmx bench ...`: benchmarks that print figures (with ratios measured in the same run). Never part of the tests.</summary>
public static class BenchCommand
{
    public static Command Create()
    {
        var cmd = new Command("bench", "Benchmarks: print figures and same-run ratios (io, model, train, lora, tokenizer, merge, rl)");
        cmd.Subcommands.Add(IoBench.Create());
        cmd.Subcommands.Add(ModelBench.Create());
        cmd.Subcommands.Add(TrainBench.Create());
        cmd.Subcommands.Add(LoraBench.Create());
        cmd.Subcommands.Add(RlBench.Create());
        cmd.Subcommands.Add(TokenizerBench.Create());
        cmd.Subcommands.Add(MergeBench.Create());
        cmd.Subcommands.Add(ServeBench.Create());
        return cmd;
    }
}
