using MMedExpert.Core.Lora;
using MMedExpert.Core.Runtime;
using MMedExpert.Core.Training;
using MMedExpert.Core.Training.Sft;
using MMedExpert.Data.Schema;

namespace MMedExpert.Cli.Pipeline.Stages;

/// <summary>Stage 4, DSA: one LoRA expert per specialty, each from its own initialization, fine-tuned on its specialty.</summary>
public static class DsaStage
{
    public static Stage Create(RunContext run) => new("dsa", "DSA: one LoRA expert per specialty (SFT, diverse inits)", s =>
    {
        var c = run.Config.Dsa;
        if (c.Inits.Length < c.Specialties.Length)
            throw new PipelineException($"dsa.inits has {c.Inits.Length} entries for {c.Specialties.Length} specialties");
        var items = run.Items("sft");
        // Experts are independent: trained run.Config.Jobs at a time (ExpertJobs), each with its own encoder.
        var perExpert = ExpertJobs.Run(Enumerable.Range(0, c.Specialties.Length).ToList(), run.Config.Jobs, (k, progress) =>
        {
            string specialty = c.Specialties[k];
            var samples = items.Where(i => i.Specialty == specialty).Select(i => MedItemSamples.Training(i, run.DataDir, run.Trace)).ToList();
            if (samples.Count == 0) throw new PipelineException($"no sft items of specialty '{specialty}' in {run.Split("sft")}");
            var lora = new LoraConfig { R = c.Rank, Alpha = c.Alpha, Init = LoraInits.Parse(c.Inits[k]) };
            var options = new TrainerOptions
            {
                LearningRate = c.LearningRate, WarmupSteps = Math.Max(1, c.Steps / 10), TotalSteps = c.Steps, ClipNorm = 1.0,
                Seed = Seeds.Derive(run.Config.Seed, "dsa-" + specialty), CheckpointEvery = 25, Description = $"dsa {specialty} ({c.Inits[k]})",
            };
            string adapterDir = run.ExpertDir(specialty, "sft"), work = run.WorkDir("dsa-" + specialty);
            var result = DsaRunner.TrainExpert(run.BaseDir, run.Encoder(), samples, specialty, lora, options, c.BatchSize, adapterDir, work,
                progress, resume: true, compute: run.ComputeDType);
            s.Log($"{specialty} ({c.Inits[k]}, {samples.Count} items): loss {result.Losses.FirstOrDefault():F3} → {result.Losses.LastOrDefault():F3}");
            Directory.CreateDirectory(Path.GetDirectoryName(run.MetricsPath("x"))!);
            File.Copy(Path.Combine(work, "metrics.jsonl"), run.MetricsPath("dsa-" + specialty), overwrite: true);
            return Directory.GetFiles(adapterDir).Append(run.MetricsPath("dsa-" + specialty)).ToList();
        });
        return perExpert.SelectMany(o => o).ToList();
    });
}
