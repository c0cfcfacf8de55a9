using MMedExpert.Core.Merging;

namespace MMedExpert.Cli.Pipeline.Stages;

/// <summary>
/// Stage 6, conflict-aware capability integration: the RL-trained experts merged into one model, by the method and by
/// the ablation methods; the main method also merges the GRPO-trained experts (the advantage ablation end to end).
/// </summary>
public static class MergeStage
{
    /// <summary>(method, experts' advantage) pairs the run merges, the main one first.</summary>
    public static IEnumerable<(string Method, string From)> Merges(PipelineConfig c)
    {
        string main = c.Gba.Advantages[0];
        foreach (var m in c.Merge.Methods) yield return (m, main);
        foreach (var a in c.Gba.Advantages.Skip(1)) yield return (c.Merge.Methods[0], a);
        foreach (var (_, seed, name) in RlStage.Runs(c.Gba))
            if (seed > 0) yield return (c.Merge.Methods[0], name);
    }

    public static Stage Create(RunContext run) => new("merge", "merge the experts (conflict-aware and ablations)", s =>
    {
        var c = run.Config;
        var outputs = new List<string>();
        foreach (var (method, from) in Merges(c))
        {
            var experts = c.Dsa.Specialties.Select(sp => run.ExpertDir(sp, from)).ToArray();
            string outDir = run.MergedDir(method, from);
            var request = new MergeSettings(Base: run.BaseDir, Experts: experts, Method: method, Density: c.Merge.Density,
                Lambda: c.Merge.Lambda, Seed: (ulong)c.Seed, Out: outDir, AsAdapter: false).ToRequest("pipeline config");
            var summary = MergeDriver.Run(request);
            s.Log($"{method} of the {from} experts: {summary.Modules} modules in {summary.Seconds:F1} s");
            outputs.AddRange(Directory.GetFiles(outDir));
        }
        return outputs;
    });
}
