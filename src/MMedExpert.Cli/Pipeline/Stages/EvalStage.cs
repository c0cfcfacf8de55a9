using MMedExpert.Data.Benchmarks;
using MMedExpert.Data.Eval;
using MMedExpert.Data.Schema;

namespace MMedExpert.Cli.Pipeline.Stages;

/// <summary>Stage 7: every model on the same MedSynth test items (greedy decoding, bootstrap CIs).</summary>
public static class EvalStage
{
    /// <summary>A model the run evaluates: its name in eval/, the weights folder, an optional adapter and, for an expert,
    /// the one specialty whose items it answers (null: all items).</summary>
    public sealed record Subject(string Name, string ModelDir, string? AdapterDir, string Role, string? Specialty = null);

    public static IEnumerable<Subject> Subjects(RunContext run)
    {
        var c = run.Config;
        yield return new("base", run.BaseDir, null, "base");
        foreach (var sp in c.Dsa.Specialties)
        {
            // An expert is only ever used on its own specialty (the merge is what answers the others), so it is evaluated
            // there alone: its other-specialty answers said nothing and cost 43 % of the eval stage.
            yield return new($"{sp}-sft", run.BaseDir, run.ExpertDir(sp, "sft"), "expert (DSA)", sp);
            foreach (var a in c.Gba.Advantages) yield return new($"{sp}-{a}", run.BaseDir, run.ExpertDir(sp, a), $"expert ({a.ToUpperInvariant()})", sp);
        }
        foreach (var (method, from) in MergeStage.Merges(c))
            yield return new($"merged-{method}-{from}", run.MergedDir(method, from), null, "merged");
    }

    public static IReadOnlyList<EvalItem> TestItems(RunContext run)
    {
        IReadOnlyList<EvalItem> items = MedSynthBench.Load(run.Split(run.Config.Eval.Split)); // test or val (PipelineConfig.Validate)
        int per = run.Config.Eval.PerSpecialty, max = run.Config.Eval.MaxItems;
        if (per > 0)
        {
            var taken = new Dictionary<string, int>();
            items = items.Where(i => (taken[i.Groups[GroupKeys.Specialty]] = taken.GetValueOrDefault(i.Groups[GroupKeys.Specialty]) + 1) <= per).ToList();
        }
        return max > 0 && items.Count > max ? items.Take(max).ToList() : items;
    }

    public static Stage Create(RunContext run) => new("eval", "evaluate base, experts and merged models (eval.split)", s =>
    {
        var c = run.Config.Eval;
        var items = TestItems(run);
        // Every model's evaluation is independent: run.Config.Jobs at a time (ExpertJobs).
        var perModel = ExpertJobs.Run(Subjects(run).ToList(), run.Config.Jobs, (subject, _) =>
        {
            var encoder = run.Encoder();
            using var loaded = run.LoadModel(subject.ModelDir, subject.AdapterDir, "expert");
            string dir = run.EvalDir(subject.Name);
            var own = subject.Specialty is null ? items : items.Where(i => i.Groups[GroupKeys.Specialty] == subject.Specialty).ToList();
            var results = EvalHarness.Run(own, ModelAnswers.Greedy(run.Generator(loaded.Model, encoder), encoder, c.MaxNewTokens), dir,
                c.BatchSize, new EvalOptions(Label: $"eval {subject.Name}", Progress: run.Config.Jobs > 1 ? ProgressMode.Plain : ProgressMode.Auto));
            s.Log($"{subject.Name}: accuracy {results.Overall.Accuracy:P1} [{results.Overall.Ci.Low:P1}, {results.Overall.Ci.High:P1}], invalid format {results.InvalidFormatRate:P0}");
            return new[] { Path.Combine(dir, EvalHarness.ResultsFile), Path.Combine(dir, EvalHarness.PredictionsFile) };
        });
        return perModel.SelectMany(o => o).ToList();
    });
}
