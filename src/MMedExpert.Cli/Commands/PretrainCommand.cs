using System.CommandLine;
using MMedExpert.Cli.Pretraining;
using MMedExpert.Core.Training;
using MMedExpert.Core;

namespace MMedExpert.Cli.Commands;

/// <summary>
/// `mmx pretrain`: the embedded base, pretrained on perception and the answer format only (never the guidelines or
/// the diagnoses). Rerun with the same --work folder to resume; the defaults reproduce the shipped base.
/// </summary>
public static class PretrainCommand
{
    public static Command Create()
    {
        var d = new PretrainSettings { OutDir = "", WorkDir = "" };
        var outDir = new Option<string>("--out") { Description = "Output model folder (bf16 weights, config, tokenizer, provenance.json)", DefaultValueFactory = _ => ShippedBase.DefaultDir };
        var work = new Option<string>("--work") { Description = "Work folder: data, tokenizer, checkpoints, metrics (rerun to resume)", DefaultValueFactory = _ => Path.Combine("runs", "pretrain") };
        var preset = new Option<string>("--preset") { Description = "Model shape", DefaultValueFactory = _ => d.Preset };
        var items = new Option<int>("--items") { Description = "MedSynth items to generate for pretraining", DefaultValueFactory = _ => d.Items };
        var dataSeed = new Option<ulong>("--data-seed") { Description = "MedSynth seed of the pretraining data", DefaultValueFactory = _ => d.DataSeed };
        var seed = new Option<long>("--seed") { Description = "Training seed", DefaultValueFactory = _ => d.Seed };
        var visionSteps = new Option<int>("--vision-steps") { Description = "Vision warm-up steps", DefaultValueFactory = _ => d.VisionSteps };
        var steps = new Option<int>("--steps") { Description = "Pretraining steps (whole model)", DefaultValueFactory = _ => d.Steps };
        var batch = new Option<int>("--batch-size") { Description = "Samples per step", DefaultValueFactory = _ => d.BatchSize };
        var lr = new Option<double>("--lr") { Description = "Peak learning rate (cosine schedule)", DefaultValueFactory = _ => d.LearningRate };
        var dtype = new Option<string>("--dtype") { Description = "Matmul precision: bf16 (mixed precision, fp32 master weights) or fp32", DefaultValueFactory = _ => d.Dtype };
        var checkpointEvery = new Option<int>("--checkpoint-every") { Description = "Checkpoint every N steps", DefaultValueFactory = _ => d.CheckpointEvery };
        var freezeVision = new Option<bool>("--freeze-vision") { Description = "Keep the warmed vision tower frozen while the language model trains (the shipped base trained it)" };
        var minFormat = new Option<double>("--min-format") { Description = "Least share of held-out diagnosis answers in the strict format for the base to be written to --out (else WORK/rejected, and the command fails)", DefaultValueFactory = _ => d.MinFormatRate };
        var readout = new Option<int>("--readout-items") { Description = "Held-out items read out at the end", DefaultValueFactory = _ => d.ReadoutItems };
        var cmd = new Command("pretrain", "Pretrain the embedded base on perception and answer format (resumable; the defaults made models/medsynth-base)");
        foreach (var o in new Option[] { outDir, work, preset, items, dataSeed, seed, visionSteps, steps, batch, lr, dtype, checkpointEvery, freezeVision, readout, minFormat })
            cmd.Options.Add(o);
        cmd.SetAction(parse =>
        {
            CommandKit.ConfigureTorch(parse);
            // Checked before hours of pretraining, not at the readout: a percentage typed for a share ("90") would reject any base.
            double minFormatRate = parse.GetValue(minFormat);
            if (!(minFormatRate >= 0 && minFormatRate <= 1))
                throw new MmxException($"--min-format {minFormatRate}: a share of the held-out answers, between 0 and 1 (e.g. 0.9 for 90 %)");
            var settings = new PretrainSettings
            {
                OutDir = parse.GetValue(outDir)!, WorkDir = parse.GetValue(work)!, Preset = parse.GetValue(preset)!, Items = parse.GetValue(items),
                DataSeed = parse.GetValue(dataSeed), Seed = parse.GetValue(seed), VisionSteps = parse.GetValue(visionSteps),
                Steps = parse.GetValue(steps), BatchSize = parse.GetValue(batch), LearningRate = parse.GetValue(lr), Dtype = parse.GetValue(dtype)!,
                CheckpointEvery = parse.GetValue(checkpointEvery), FreezeVision = parse.GetValue(freezeVision), ReadoutItems = parse.GetValue(readout), MinFormatRate = minFormatRate,
                Command = "./mmx " + string.Join(" ", Environment.GetCommandLineArgs().Skip(1)),
            };
            // Ctrl-C stops after the current step, with a checkpoint; the same command resumes.
            using var stop = new CancellationTokenSource();
            ConsoleCancelEventHandler onCancel = (_, e) => { e.Cancel = true; stop.Cancel(); };
            Console.CancelKeyPress += onCancel;
            try
            {
                var p = BasePretraining.Run(settings, ProgressReporter.Create(), Console.WriteLine, stop.Token);
                if (p is null) { Console.WriteLine($"stopped; checkpoints are in {settings.WorkDir} (rerun the same command to resume)"); return 1; }
                Console.WriteLine($"wrote {settings.OutDir} (sha256 {p.Sha256}; {p.WallSeconds:0} s in all)");
                return 0;
            }
            finally { Console.CancelKeyPress -= onCancel; }
        });
        return cmd;
    }
}
