using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using MMedExpert.Core.IO;
using MMedExpert.Core.Training;

namespace MMedExpert.Cli.Pipeline.Stages;

/// <summary>Stage 8: report.md (main table with 95% CIs, ablations, timings) and the figures, from the run's files.</summary>
public static class ReportStage
{
    /// <summary>An accuracy with its 95 % bootstrap interval.</summary>
    sealed record Acc(int N, double Value, double Low, double High)
    {
        public static Acc Of(JsonNode j) => new(j["n"]!.GetValue<int>(), j["accuracy"]!.GetValue<double>(), j["ci95"]!["low"]!.GetValue<double>(), j["ci95"]!["high"]!.GetValue<double>());
        public bool Beyond(Acc other) => Low > other.High;
    }

    sealed record Row(string Name, string Role, Acc Overall, double Invalid, Dictionary<string, Acc> BySpecialty)
    {
        public int N => Overall.N;
        public double Accuracy => Overall.Value;
        public double Low => Overall.Low;
        public double High => Overall.High;
        public Acc On(string specialty) => BySpecialty.TryGetValue(specialty, out var a) ? a : new Acc(0, double.NaN, double.NaN, double.NaN);
    }

    static Row Read(RunContext run, EvalStage.Subject s)
    {
        var j = JsonNode.Parse(File.ReadAllText(Path.Combine(run.EvalDir(s.Name), "results.json")))!;
        var by = new Dictionary<string, Acc>();
        if (j["by_group"]?["specialty"] is JsonObject groups)
            foreach (var (k, v) in groups) by[k] = Acc.Of(v!);
        return new Row(s.Name, s.Role, Acc.Of(j), j["invalid_format_rate"]!.GetValue<double>(), by);
    }

    static string P(double v) => (100 * v).ToString("0.0", CultureInfo.InvariantCulture);

    /// <summary>"x %" of a reference accuracy; "no share (expert at 0 %)" where the reference is zero.</summary>
    static string Share(double v, double reference) => reference == 0 ? "no share (expert at 0 %)" : $"{P(v / reference)} %";
    static string Ci(Acc a) => $"{P(a.Value)} [{P(a.Low)}, {P(a.High)}]";
    static string Ci(Row r) => Ci(r.Overall);
    static string Verdict(bool met) => met ? "**met**" : "**not met**";

    public static Stage Create(RunContext run) => new("report", "report.md and figures", s =>
    {
        var c = run.Config;
        var rows = EvalStage.Subjects(run).Select(x => Read(run, x)).ToDictionary(r => r.Name);
        var specialties = c.Dsa.Specialties;
        string main = c.Gba.Advantages[0], mainMerge = $"merged-{c.Merge.Methods[0]}-{main}";
        var md = new StringBuilder();
        md.AppendLine($"# MMedExpert run `{c.Name}`").AppendLine();
        md.AppendLine($"MedSynth {c.Eval.Split} split: {rows["base"].N} items ({string.Join(", ", specialties.Select(sp => $"{rows["base"].On(sp).N} {sp}"))}; 4–5 options, chance ≈ 22.5 %). Accuracy in %, with 95 % percentile-bootstrap intervals ({c.Eval.BootstrapResamples} resamples); each expert answers its own specialty's items only, so its accuracy column is its own-specialty accuracy. Reproduce: `./mmx pipeline --config config.json` (seed {c.Seed}).").AppendLine();

        md.AppendLine("## Main table").AppendLine();
        md.AppendLine("| model | role | accuracy [95% CI] | " + string.Join(" | ", specialties) + " | invalid format |");
        md.AppendLine("|---|---|---|" + string.Concat(specialties.Select(_ => "---|")) + "---|");
        foreach (var r in rows.Values)
            md.AppendLine($"| {r.Name} | {r.Role} | {Ci(r)} | " + string.Join(" | ", specialties.Select(sp => r.BySpecialty.TryGetValue(sp, out var a) ? P(a.Value) : "–")) + $" | {P(r.Invalid)} |");
        md.AppendLine();

        var b = rows["base"];
        var m = rows[mainMerge];
        bool beyond = m.Overall.Beyond(b.Overall);
        md.AppendLine("## Claims checked").AppendLine();
        md.AppendLine($"- Merged model ({mainMerge}) vs base, overall: {Ci(m)} vs {Ci(b)}: {Verdict(beyond)} (better with non-overlapping 95 % CIs).");
        foreach (var sp in specialties)
        {
            var sft = rows[$"{sp}-sft"].On(sp);
            var rl = rows[$"{sp}-{main}"].On(sp);
            var baseOwn = b.On(sp);
            md.AppendLine($"- {sp}: DSA expert vs base on {sp} ({sft.N} items): {Ci(sft)} vs {Ci(baseOwn)}: {Verdict(sft.Beyond(baseOwn))}; " +
                          $"after {main.ToUpperInvariant()}: {Ci(rl)}; merged on {sp}: {Ci(m.On(sp))} = {Share(m.On(sp).Value, rl.Value)} of the {main.ToUpperInvariant()} expert " +
                          $"and {Share(m.On(sp).Value, sft.Value)} of the DSA expert: {Verdict(m.On(sp).Value >= 0.8 * rl.Value)} (≥ 80 % of the merged-in expert" +
                          (rl.Value == 0 ? "; met only because that expert scores 0" : "") + ").");
        }
        foreach (var method in c.Merge.Methods.Skip(1))
        {
            var other = rows[$"merged-{method}-{main}"];
            md.AppendLine($"- {c.Merge.Methods[0]} ≥ {method}, overall: {Ci(m)} vs {Ci(other)}: {Verdict(m.Accuracy >= other.Accuracy)}" +
                          (m.Overall.Beyond(other.Overall) ? " (beyond the CIs)" : other.Overall.Beyond(m.Overall) ? " (worse beyond the CIs)" : " (the intervals overlap)") + ".");
        }
        md.AppendLine();

        int seeds = Math.Max(1, c.Gba.Seeds);
        md.AppendLine($"## {main.ToUpperInvariant()} vs the other advantages over {seeds} RL seed{(seeds > 1 ? "s" : "")} (merged by {c.Merge.Methods[0]})").AppendLine();
        md.AppendLine("| seed | " + string.Join(" | ", c.Gba.Advantages) + " |");
        md.AppendLine("|---|" + string.Concat(c.Gba.Advantages.Select(_ => "---|")));
        var bySeed = Enumerable.Range(0, seeds).Select(k => c.Gba.Advantages.Select(a => rows[$"merged-{c.Merge.Methods[0]}-{RlStage.SeedName(a, k)}"]).ToList()).ToList();
        for (int k = 0; k < seeds; k++) md.AppendLine($"| {k} | {string.Join(" | ", bySeed[k].Select(Ci))} |");
        md.AppendLine("| mean ± sd over seeds | " + string.Join(" | ", c.Gba.Advantages.Select((_, i) => MeanSd(bySeed.Select(r => r[i].Accuracy).ToList()))) + " |");
        md.AppendLine();
        for (int i = 1; i < c.Gba.Advantages.Length; i++)
        {
            var diffs = bySeed.Select(r => r[0].Accuracy - r[i].Accuracy).ToList();
            md.AppendLine($"{main} − {c.Gba.Advantages[i]}, paired by seed: " + string.Join(", ", diffs.Select(d => (d >= 0 ? "+" : "") + P(d))) +
                          $" points (mean {(diffs.Average() >= 0 ? "+" : "")}{P(diffs.Average())}); seeds where the intervals separate: {bySeed.Count(r => r[0].Overall.Beyond(r[i].Overall) || r[i].Overall.Beyond(r[0].Overall))} of {seeds}.");
        }
        md.AppendLine();

        md.AppendLine("## Ablation: advantage estimator (same rewards, same seeds)").AppendLine();
        md.AppendLine("| specialty | " + string.Join(" | ", c.Gba.Advantages.Select(a => $"{a} (own specialty acc.)")) + " | " + string.Join(" | ", c.Gba.Advantages.Select(a => $"{a} final reward")) + " |");
        md.AppendLine("|---|" + string.Concat(c.Gba.Advantages.Select(_ => "---|---|")));
        foreach (var sp in specialties)
        {
            var acc = c.Gba.Advantages.Select(a => P(rows[$"{sp}-{a}"].On(sp).Value));
            var reward = c.Gba.Advantages.Select(a => FinalReward(run.MetricsPath($"rl-{sp}-{a}")));
            md.AppendLine($"| {sp} | {string.Join(" | ", acc)} | {string.Join(" | ", reward)} |");
        }
        foreach (var a in c.Gba.Advantages.Skip(1))
            md.AppendLine().AppendLine($"Merged ({c.Merge.Methods[0]}) from {main} experts: {Ci(m)}; from {a} experts: {Ci(rows[$"merged-{c.Merge.Methods[0]}-{a}"])}.");
        md.AppendLine();

        md.AppendLine("## Ablation: merge method (experts after " + main.ToUpperInvariant() + ")").AppendLine();
        md.AppendLine("| method | accuracy [95% CI] | " + string.Join(" | ", specialties) + " |");
        md.AppendLine("|---|---|" + string.Concat(specialties.Select(_ => "---|")));
        foreach (var method in c.Merge.Methods)
        {
            var r = rows[$"merged-{method}-{main}"];
            md.AppendLine($"| {method} | {Ci(r)} | " + string.Join(" | ", specialties.Select(sp => P(r.On(sp).Value))) + " |");
        }
        md.AppendLine();

        md.AppendLine("## Timings").AppendLine();
        md.AppendLine("| stage | seconds |").AppendLine("|---|---|");
        double total = 0;
        foreach (var stage in new[] { "data", "tokenizer", "base", "dsa", "rl", "merge", "eval" })
        {
            string rec = StageRunner.RecordPathOf(run.RunDir, stage);
            if (!File.Exists(rec)) continue;
            double sec = JsonNode.Parse(File.ReadAllText(rec))!["Seconds"]!.GetValue<double>();
            total += sec;
            md.AppendLine($"| {stage} | {sec.ToString("0", CultureInfo.InvariantCulture)} |");
        }
        md.AppendLine($"| total (before the report) | {total.ToString("0", CultureInfo.InvariantCulture)} |").AppendLine();
        md.AppendLine("Figures: `figures/accuracy.svg`, `figures/rl-reward.svg`, `figures/rl-accuracy.svg`. Curves: `metrics/*.jsonl`. Notebooks: `scripts/run-notebooks.sh --run <this folder>`.");

        Directory.CreateDirectory(run.FiguresDir);
        var outputs = new List<string>();
        void Figure(string name, string svg) { string p = Path.Combine(run.FiguresDir, name); AtomicFile.WriteAllText(p, svg); outputs.Add(p); }
        Figure("accuracy.svg", SvgCharts.Bars("MedSynth test accuracy (95% CI)", rows.Values.Select(r => (r.Name, r.Accuracy, r.Low, r.High)).ToList()));
        foreach (var (file, field, title) in new[] { ("rl-reward.svg", "reward_mean", "RL: mean weighted reward"), ("rl-accuracy.svg", "accuracy", "RL: rollout accuracy") })
            Figure(file, SvgCharts.Lines(title, "step", specialties.SelectMany(sp => c.Gba.Advantages.Select(a =>
                ($"{sp} {a}", (IReadOnlyList<(double, double)>)Curve(run.MetricsPath($"rl-{sp}-{a}"), field)))).ToList()));

        string report = Path.Combine(run.RunDir, "report.md");
        AtomicFile.WriteAllText(report, md.ToString());
        outputs.Add(report);
        s.Log($"merged vs base: {Ci(m)} vs {Ci(b)} ({(beyond ? "beyond" : "not beyond")} the CIs)");
        return outputs;
    });

    static string MeanSd(IReadOnlyList<double> xs)
    {
        double mean = xs.Average(), sd = xs.Count > 1 ? Math.Sqrt(xs.Sum(x => (x - mean) * (x - mean)) / (xs.Count - 1)) : 0;
        return $"{P(mean)} ± {P(sd)}";
    }

    static List<(double, double)> Curve(string path, string field) =>
        File.Exists(path)
            ? MetricsWriter.Read(path).Where(o => o[field] != null).Select(o => (o["step"]!.GetValue<double>(), o[field]!.GetValue<double>())).ToList()
            : new();

    static string FinalReward(string path)
    {
        var curve = Curve(path, "reward_mean");
        if (curve.Count == 0) return "–";
        // Mean of the last quarter of steps: one step's reward is noisy.
        var tail = curve.Skip(curve.Count * 3 / 4).ToList();
        return tail.Average(p => p.Item2).ToString("0.000", CultureInfo.InvariantCulture);
    }
}
