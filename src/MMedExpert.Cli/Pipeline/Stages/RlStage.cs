using MMedExpert.Algebra.Advantages;
using MMedExpert.Algebra.Rewards;
using MMedExpert.Core.Runtime;
using MMedExpert.Core.Training;
using MMedExpert.Core.Training.Grpo;
using MMedExpert.Data.Schema;
using GrpoOptions = MMedExpert.Core.Training.Grpo.GrpoOptions;

namespace MMedExpert.Cli.Pipeline.Stages;

/// <summary>
/// Stage 5, GBA: reinforcement learning of each expert from its DSA adapter, with the guideline-based advantage (the
/// method) and, as the ablation, plain GRPO on the same rewards; KL reference = the DSA expert RL starts from
/// (<c>gba.kl_reference</c>).
/// </summary>
public static class RlStage
{
    /// <summary>Every RL run of an expert: (advantage, seed index, its name in experts/ and metrics/).</summary>
    public static IEnumerable<(string Advantage, int Seed, string Name)> Runs(GbaConfig c)
    {
        for (int seed = 0; seed < Math.Max(1, c.Seeds); seed++)
            foreach (var a in c.Advantages) yield return (a, seed, SeedName(a, seed));
    }

    public static string SeedName(string advantage, int seed) => seed == 0 ? advantage : $"{advantage}-seed{seed}";

    public static Stage Create(RunContext run) => new("rl", "GBA: RL of each expert (and the GRPO ablation)", s =>
    {
        var c = run.Config.Gba;
        var spec = c.Spec is null ? DefaultSpec.load() : SpecJson.load(c.Spec);
        var items = run.Items("rl");
        // One read-only sample list per specialty, shared by its runs (GrpoTrainer only indexes it).
        var samplesOf = run.Config.Dsa.Specialties.ToDictionary(sp => sp, sp => (IReadOnlyList<RlSample>)items.Where(i => i.Specialty == sp)
            .Select(i => new RlSample(MedItemSamples.Prompt(i, run.DataDir), MedItemSamples.Annotations(i, run.Trace))).ToList());
        var runs = run.Config.Dsa.Specialties.SelectMany(sp => Runs(c).Select(r => (Specialty: sp, r.Advantage, r.Seed, r.Name))).ToList();
        // Every (expert, advantage, seed) run is independent: run.Config.Jobs at a time (ExpertJobs).
        var perRun = ExpertJobs.Run(runs, run.Config.Jobs, (r, progress) =>
        {
            var (specialty, advantage, seed, name) = r;
            var encoder = run.Encoder();
            var samples = samplesOf[specialty];
            using var loaded = run.LoadModel(run.BaseDir, run.ExpertDir(specialty, "sft"), specialty);
            var lora = loaded.Lora!;
            string work = run.WorkDir($"rl-{specialty}-{name}");
            var options = new GrpoOptions
            {
                Steps = c.Steps, PromptsPerStep = c.PromptsPerStep, GroupSize = c.GroupSize, Temperature = c.Temperature,
                TopP = c.TopP, MaxNewTokens = c.MaxNewTokens, LearningRate = c.LearningRate,
                Loss = new GrpoLossOptions { Beta = c.Beta }, KlReference = c.KlReference, Advantage = advantage,
                Seed = Seeds.Derive(run.Config.Seed, seed == 0 ? $"rl-{specialty}" : $"rl-{specialty}-seed{seed}"), // same seeds for every advantage: a paired ablation
                CheckpointEvery = 5, OutputDir = work,
            };
            using var trainer = new GrpoTrainer(run.Generator(loaded.Model, encoder), lora, specialty, encoder, spec,
                EstimatorModule.parse(advantage), samples, options, progress);
            var result = trainer.Run(resume: true);
            string adapterDir = run.ExpertDir(specialty, name);
            lora.Save(specialty, adapterDir);
            File.Copy(Path.Combine(work, "metrics.jsonl"), run.MetricsPath($"rl-{specialty}-{name}"), overwrite: true);
            s.Log($"{specialty} {name}: {result.LastStep} steps");
            return Directory.GetFiles(adapterDir).Append(run.MetricsPath($"rl-{specialty}-{name}")).ToList();
        });
        return perRun.SelectMany(o => o).ToList();
    });
}
