using MMedExpert.Core.Model;
using MMedExpert.Core.Model.Generation;
using MMedExpert.Core.Model.Loading;
using MMedExpert.Core.Vision;
using TorchSharp;
using static TorchSharp.torch;

namespace MMedExpert.Core.Parity;

/// <summary>
/// Runs the project's own path on a <see cref="HfParityFixture"/>: the checkpoint through <see cref="ModelLoader"/>, the
/// image through <see cref="ImageProcessor"/> with the checkpoint's preprocessor_config.json, the rope index, one forward
/// pass for the logits, and greedy decoding through the KV-cache <see cref="Qwen25VLGenerator"/>, each compared with
/// the reference.
/// </summary>
public static class ParityCheck
{
    /// <summary>fp32's bound on pixel values and logits: a correct port is ~1e-6 away (float rounding).</summary>
    public const double Fp32Tolerance = 1e-4;

    /// <param name="dtype">the weights' dtype: fp32 (gated by <see cref="Fp32Tolerance"/>) or bf16 (figures only)</param>
    public static ParityReport Run(string fixtureDir, ScalarType dtype = ScalarType.Float32)
    {
        string checkpoint = Path.Combine(Path.GetFullPath(fixtureDir), HfParityFixture.CheckpointDir);
        string processorPath = Path.Combine(checkpoint, "preprocessor_config.json");
        if (!File.Exists(processorPath)) throw new MmxException($"{processorPath}: not found (the fixture's checkpoint must say how its images are preprocessed)");
        var processor = ImageProcessor.Load(processorPath);
        using var loaded = ModelLoader.Load(new ModelReference(checkpoint), new ModelLoadOptions { DType = dtype });
        var model = loaded.Model;
        using var fixture = HfParityFixture.Open(fixtureDir, model.Config.VocabSize);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();

        using var processed = processor.Process(new[] { fixture.Image });
        var grid = processed.GridThwTensor();
        bool pixelShape = processed.PixelValues.shape.SequenceEqual(fixture.PixelValues.shape);
        bool gridEqual = grid.shape.SequenceEqual(fixture.ImageGridThw.shape) && grid.eq(fixture.ImageGridThw).all().item<bool>();
        double? pixelDiff = pixelShape ? MaxAbsDiff(processed.PixelValues, fixture.PixelValues) : null;

        var (positions, deltas) = model.GetRopeIndex(fixture.InputIds, grid, fixture.AttentionMask);
        bool positionsEqual = positions.cpu().eq(fixture.PositionIds).all().item<bool>();
        bool deltasEqual = deltas.cpu().reshape(-1).eq(fixture.RopeDeltas).all().item<bool>();

        var logits = model.forward(fixture.InputIds, fixture.AttentionMask, processed.PixelValues, grid);
        double logitsDiff = MaxAbsDiff(logits, fixture.Logits);

        // The reference generated with eos_token_id=None: no stop token, exactly as many tokens as it stored.
        int newTokens = (int)fixture.GreedyIds.shape[1];
        var prompt = fixture.InputIds.data<long>().Select(i => (int)i).ToArray();
        var generated = new Qwen25VLGenerator(model).Generate(new PromptBatch(new[] { (IReadOnlyList<int>)prompt }, processed.PixelValues, grid),
            new GenerationOptions { MaxNewTokens = newTokens, Temperature = 0, StopTokenIds = Array.Empty<int>() })[0];
        long[] greedy = generated.TokenIds.Select(i => (long)i).ToArray();
        long[] reference = fixture.GreedyIds.data<long>().ToArray();
        bool greedyEqual = greedy.SequenceEqual(reference);

        bool gated = dtype == ScalarType.Float32;
        double? tolerance = gated ? Fp32Tolerance : null;
        bool Close(double? diff) => diff is { } d && (!gated || d <= Fp32Tolerance);
        string? first =
            // The image is preprocessed in fp32 whatever the model's dtype, so its bound always holds.
            !pixelShape || !gridEqual || !(pixelDiff <= Fp32Tolerance) ? "pixel_values"
            : !positionsEqual ? "position_ids"
            : !deltasEqual ? "rope_deltas"
            : !Close(logitsDiff) ? "logits"
            : !greedyEqual ? "greedy"
            : null;
        return new ParityReport(fixture.Dir, dtype == ScalarType.BFloat16 ? "bf16" : "fp32", tolerance, pixelShape, gridEqual, pixelDiff,
            positionsEqual, deltasEqual, logitsDiff, greedyEqual, greedy, reference, first);
    }

    static double MaxAbsDiff(Tensor ours, Tensor reference)
    {
        using var scope = NewDisposeScope();
        return (ours.cpu().to_type(ScalarType.Float64) - reference.to_type(ScalarType.Float64)).abs().max().item<double>();
    }
}
