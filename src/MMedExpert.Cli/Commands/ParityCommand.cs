using System.CommandLine;
using MMedExpert.Core.Model;
using MMedExpert.Core.Parity;
using static TorchSharp.torch;

namespace MMedExpert.Cli.Commands;

/// <summary>
/// `mmx parity --fixture DIR`: the model, loaded the way every command loads it, against a Hugging Face reference
/// (shared/fixtures/hf-parity/&lt;name&gt;): pixel values, M-RoPE position ids and rope deltas, logits, greedy ids.
/// Exit 0 when all agree (fp32: pixel values and logits within 1e-4, the rest exactly), 1 naming the first stage that
/// diverged; bf16 reports its figures without gating the logits.
/// </summary>
public static class ParityCommand
{
    public static Command Create()
    {
        var fixture = new Option<string>("--fixture") { Description = "Fixture folder (checkpoint/, image.png, inputs.safetensors, outputs.safetensors)", Required = true };
        var dtypeName = new Option<string>("--dtype") { Description = "Weights' dtype: fp32 (gated, 1e-4) or bf16 (reported, logits not gated)", DefaultValueFactory = _ => "fp32" };
        var json = new Option<bool>("--json") { Description = "Print one JSON object" };
        var cmd = new Command("parity", "Compare the model with a Hugging Face transformers reference fixture, stage by stage");
        foreach (var o in new Option[] { fixture, dtypeName, json }) cmd.Options.Add(o);
        cmd.SetAction(parse =>
        {
            CommandKit.ConfigureTorch(parse);
            var dtype = parse.GetValue(dtypeName)!.ToLowerInvariant() switch
            {
                "fp32" or "float32" => ScalarType.Float32,
                "bf16" or "bfloat16" => ScalarType.BFloat16,
                var other => throw new ModelConfigException($"--dtype: '{other}' is not fp32 or bf16"),
            };
            var report = ParityCheck.Run(parse.GetValue(fixture)!, dtype);
            if (parse.GetValue(json)) CommandKit.WriteSnakeJson(report);
            else
            {
                Console.WriteLine($"{report.Fixture} ({report.Dtype})");
                Console.WriteLine($"  pixel_values  max |Δ| {Figure(report.PixelValuesMaxAbsDiff)}" + (report.ImageGridThwEqual ? "" : "  (image_grid_thw differs)"));
                Console.WriteLine($"  position_ids  {(report.PositionIdsEqual ? "equal" : "DIFFER")}");
                Console.WriteLine($"  rope_deltas   {(report.RopeDeltasEqual ? "equal" : "DIFFER")}");
                Console.WriteLine($"  logits        max |Δ| {Figure(report.LogitsMaxAbsDiff)}" + (report.Gated ? $" (bound {report.Tolerance:0e0})" : " (not gated)"));
                Console.WriteLine($"  greedy        {(report.GreedyEqual ? "equal" : "DIFFER")}  [{string.Join(" ", report.GreedyIds)}] vs reference [{string.Join(" ", report.ReferenceGreedyIds)}]");
            }
            if (report.Passed) return 0;
            Console.Error.WriteLine($"parity: first divergence at {report.FirstDivergence} ({report.Fixture}, {report.Dtype})");
            return report.Gated ? 1 : 0;
        });
        return cmd;
    }

    static string Figure(double? d) => d is { } v ? v.ToString("0.###e0") : "n/a (shapes differ)";
}
