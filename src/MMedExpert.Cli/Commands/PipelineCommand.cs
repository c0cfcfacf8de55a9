using System.CommandLine;
using MMedExpert.Cli.Pipeline;
using MMedExpert.Cli.Pipeline.Stages;
using MMedExpert.Core.IO;

namespace MMedExpert.Cli.Commands;

/// <summary>`mmx pipeline`: the whole method end to end (docs/run-layout.md), resumable stage by stage.</summary>
public static class PipelineCommand
{
    public static Command Create()
    {
        var config = new Option<string?>("--config") { Description = "Pipeline config JSON (defaults: the embedded MedSynth run); see docs/pipeline.md" };
        var name = new Option<string?>("--name") { Description = "Run name: writes runs/<name>/ (default: the config's name)" };
        var runs = new Option<string>("--runs") { Description = "Folder of runs", DefaultValueFactory = _ => "runs" };
        var from = new Option<string?>("--from") { Description = "Rerun from this stage: data, tokenizer, base, dsa, rl, merge, eval, report" };
        var cmd = new Command("pipeline", "Run the whole method: MedSynth → base → DSA experts → GBA RL → conflict-aware merge → eval → report");
        var baseModel = new Option<string?>("--base") { Description = "shipped (the pretrained embedded base, default), scratch (build and pretrain one briefly), or a checkpoint folder (HF layout)" };
        foreach (var o in new Option[] { config, name, runs, from, baseModel }) cmd.Options.Add(o);
        cmd.SetAction(parse =>
        {
            CommandKit.ConfigureTorch(parse);
            var cfg = parse.GetValue(config) is { } path ? PipelineConfig.Load(path) : new PipelineConfig();
            if (parse.GetValue(name) is { } n) cfg = cfg with { Name = n };
            if (parse.GetValue(baseModel) is { } b) cfg = cfg with { Base = WithBase(cfg.Base, b) };
            string runDir = Path.Combine(parse.GetValue(runs)!, cfg.Name);
            Directory.CreateDirectory(runDir);
            string json = cfg.ToJson();
            AtomicFile.WriteAllText(Path.Combine(runDir, "config.json"), json);
            var run = new RunContext(runDir, cfg);
            var stages = new List<Stage>
            {
                DataStage.Create(run), TokenizerStage.Create(run), BaseStage.Create(run), DsaStage.Create(run),
                RlStage.Create(run), MergeStage.Create(run), EvalStage.Create(run), ReportStage.Create(run),
            };
            new StageRunner(run.RunDir, json, stages).Run(parse.GetValue(from), Console.WriteLine);
            Console.WriteLine($"report: {Path.Combine(run.RunDir, "report.md")}");
            return 0;
        });
        return cmd;
    }

    /// <summary>--base: a source name, or a checkpoint folder that must exist with its config.json.</summary>
    static BaseConfig WithBase(BaseConfig b, string value)
    {
        if (value is BaseConfig.Shipped or BaseConfig.Scratch) return b with { Source = value, Checkpoint = null };
        string full = Path.GetFullPath(value);
        if (!Directory.Exists(full)) throw new PipelineException($"--base {value}: no such folder (expected shipped, scratch, or a checkpoint folder)");
        if (!File.Exists(Path.Combine(full, "config.json"))) throw new PipelineException($"--base {value}: {Path.Combine(full, "config.json")} not found (not a checkpoint folder in the Hugging Face layout)");
        return b with { Checkpoint = full };
    }
}
