using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using MMedExpert.Core.IO;
using MMedExpert.Core.Training;

namespace MMedExpert.Cli.Pipeline.Stages;

/// <summary>Stage 8: report.md (main table with 95% CIs, ablations, timings) and the figures, from the run's files.</summary>
public static class ReportStage
{
    sealed record Row(string Name, string Role, int N, double Accuracy, double Low, double High, double Invalid, Dictionary<string, double> BySpecialty);

    static Row Read(RunContext run, EvalStage.Subject s)
    {
        var j = JsonNode.Parse(File.ReadAllText(Path.Combine(run.EvalDir(s.Name), "results.json")))!;
        var by = new Dictionary<string, double>();
        if (j["by_group"]?["specialty"] is JsonObject groups)
            foreach (var (k, v) in groups) by[k] = v!["accuracy"]!.GetValue<double>();
        return new Row(s.Name, s.Role, j["n"]!.GetValue<int>(), j["accuracy"]!.GetValue<double>(), j["ci95"]!["low"]!.GetValue<double>(),
            j["ci95"]!["high"]!.GetValue<double>(), j["invalid_format_rate"]!.GetValue<double>(), by);
    }

    static string P(double v) => (100 * v).ToString("0.0", CultureInfo.InvariantCulture);
    static string Ci(Row r) => $"{P(r.Accuracy)} [{P(r.Low)}, {P(r.High)}]";

    public static Stage Create(RunContext run) => new("report", "report.md and figures", s =>
    {
        var c = run.Config;
        var rows = EvalStage.Subjects(run).Select(x => Read(run, x)).ToDictionary(r => r.Name);
        var specialties = c.Dsa.Specialties;
        string main = c.Gba.Advantages[0], mainMerge = $"merged-{c.Merge.Methods[0]}-{main}";
        var md = new StringBuilder();
        md.AppendLine($"# MMedExpert run `{c.Name}`").AppendLine();
        md.AppendLine($"MedSynth test split: {rows["base"].N} items (4 specialties, 4–5 options; chance ≈ 22.5 %). Accuracy in %, with 95 % percentile-bootstrap intervals ({c.Eval.BootstrapResamples} resamples). Reproduce: `./mmx pipeline --config config.json` (seed {c.Seed}).").AppendLine();

        md.AppendLine("## Main table").AppendLine();
        md.AppendLine("| model | role | accuracy [95% CI] | " + string.Join(" | ", specialties) + " | invalid format |");
        md.AppendLine("|---|---|---|" + string.Concat(specialties.Select(_ => "---|")) + "---|");
        foreach (var r in rows.Values)
            md.AppendLine($"| {r.Name} | {r.Role} | {Ci(r)} | " + string.Join(" | ", specialties.Select(sp => r.BySpecialty.TryGetValue(sp, out var a) ? P(a) : "–")) + $" | {P(r.Invalid)} |");
        md.AppendLine();

        var b = rows["base"];
        var m = rows[mainMerge];
        bool beyond = m.Low > b.High;
        md.AppendLine("## Claims checked").AppendLine();
        md.AppendLine($"- Merged model ({mainMerge}) vs base: {Ci(m)} vs {Ci(b)}: **{(beyond ? "better beyond the confidence intervals" : m.Accuracy > b.Accuracy ? "better, but the intervals overlap" : "not better")}**.");
        foreach (var sp in specialties)
        {
            var sft = rows[$"{sp}-sft"];
            var rl = rows[$"{sp}-{main}"];
            double Own(Row r) => r.BySpecialty.GetValueOrDefault(sp);
            md.AppendLine($"- {sp} expert on its own specialty: base {P(Own(b))} → DSA {P(Own(sft))} → {main.ToUpperInvariant()} {P(Own(rl))}.");
        }
        md.AppendLine();

        md.AppendLine("## Ablation: advantage estimator (same rewards, same seeds)").AppendLine();
        md.AppendLine("| specialty | " + string.Join(" | ", c.Gba.Advantages.Select(a => $"{a} (own specialty acc.)")) + " | " + string.Join(" | ", c.Gba.Advantages.Select(a => $"{a} final reward")) + " |");
        md.AppendLine("|---|" + string.Concat(c.Gba.Advantages.Select(_ => "---|---|")));
        foreach (var sp in specialties)
        {
            var acc = c.Gba.Advantages.Select(a => P(rows[$"{sp}-{a}"].BySpecialty.GetValueOrDefault(sp)));
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
            md.AppendLine($"| {method} | {Ci(r)} | " + string.Join(" | ", specialties.Select(sp => P(r.BySpecialty.GetValueOrDefault(sp)))) + " |");
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
