using static TorchSharp.torch;

namespace MMedExpert.Core.Vision;

/// <summary>
/// What the image processor hands to the model: the patch rows of all images, concatenated image after image
/// ([N, 3·2·14·14] fp32), each image's patch grid (t, h, w) — image_grid_thw — and the number of
/// <c>&lt;|image_pad|&gt;</c> tokens each image becomes in the prompt (t·h·w / merge²). Owns <see cref="PixelValues"/>.
/// </summary>
public sealed class ProcessedImages : IDisposable
{
    public Tensor PixelValues { get; }
    public long[][] GridThw { get; }
    public int[] TokenCounts { get; }

    public ProcessedImages(Tensor pixelValues, long[][] gridThw, int[] tokenCounts)
    {
        PixelValues = pixelValues;
        GridThw = gridThw;
        TokenCounts = tokenCounts;
    }

    /// <summary>image_grid_thw as an int64 tensor [images, 3], the vision tower's second input.</summary>
    public Tensor GridThwTensor()
    {
        var flat = GridThw.SelectMany(g => g).ToArray();
        return tensor(flat, new long[] { GridThw.Length, 3 }, ScalarType.Int64);
    }

    public void Dispose() => PixelValues.Dispose();
}
