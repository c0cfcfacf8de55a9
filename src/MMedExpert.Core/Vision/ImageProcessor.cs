using static TorchSharp.torch;

namespace MMedExpert.Core.Vision;

/// <summary>
/// The Qwen2.5-VL image processor (Hugging Face's Qwen2VLImageProcessor, the slow Pillow path): for each image,
/// smart resize (sides multiples of 28, area within [min_pixels, max_pixels]) with Pillow-exact resampling,
/// rescale by 1/255, normalize with the CLIP mean/std, repeat the single frame to the temporal patch size, and cut
/// into patch rows. A row holds one 2×14×14 patch as (channel, frame, row, column); the rows of an image go in
/// merge blocks: the 2×2 patches of one language-model token are consecutive, blocks row-major.
/// </summary>
public sealed class ImageProcessor
{
    public ImageProcessorConfig Config { get; }

    /// <summary>Per channel, the final fp32 value of each uint8 level; the same float operations as the reference.</summary>
    private readonly float[][] levels;

    public ImageProcessor(ImageProcessorConfig? config = null)
    {
        Config = config ?? ImageProcessorConfig.Default;
        Config.Validate();
        levels = Enumerable.Range(0, 3).Select(ChannelLevels).ToArray();
    }

    /// <summary>Reads preprocessor_config.json from a file or checkpoint folder.</summary>
    public static ImageProcessor Load(string path) => new(ImageProcessorConfig.Load(path));

    private float[] ChannelLevels(int channel)
    {
        var table = new float[256];
        float mean = (float)Config.ImageMean[channel], std = (float)Config.ImageStd[channel];
        for (int v = 0; v < 256; v++)
        {
            // Rescale in float64, then float32; normalize in float32 (numpy's dtypes in the reference).
            float x = Config.DoRescale ? (float)(v * Config.RescaleFactor) : v;
            table[v] = Config.DoNormalize ? (x - mean) / std : x;
        }
        return table;
    }

    /// <summary>(height, width) an image of this size is resized to.</summary>
    public (int Height, int Width) ResizedSize(int height, int width, string source = "image")
    {
        if (!Config.DoResize)
        {
            if (height % Config.Factor != 0 || width % Config.Factor != 0)
                throw new ImageProcessingException(
                    $"{source}: with do_resize false, sides must be multiples of {Config.Factor}, got {width}×{height}");
            return (height, width);
        }
        return SmartResize.Compute(height, width, Config.Factor, Config.MinPixels, Config.MaxPixels, source);
    }

    /// <summary>image_grid_thw of one image of this size: (1, h/14, w/14) after resizing.</summary>
    public long[] GridThw(int height, int width, string source = "image")
    {
        var (h, w) = ResizedSize(height, width, source);
        return new long[] { 1, h / Config.PatchSize, w / Config.PatchSize };
    }

    /// <summary>Number of image tokens an image of this size becomes.</summary>
    public int TokenCount(int height, int width, string source = "image")
    {
        var g = GridThw(height, width, source);
        return (int)(g[0] * g[1] * g[2] / (Config.MergeSize * Config.MergeSize));
    }

    /// <summary>Decodes and processes image files (PNG, JPEG), in order.</summary>
    public ProcessedImages Process(IReadOnlyList<string> paths) => Process(paths.Select(ImageDecoder.Load).ToList());

    public ProcessedImages Process(IReadOnlyList<RgbImage> images)
    {
        if (images.Count == 0) throw new ImageProcessingException("no images to process");
        var perImage = images.Select(PatchRows).ToList();
        long rows = perImage.Sum(p => (long)p.Rows.Length / Config.RowWidth);
        var all = new float[rows * Config.RowWidth];
        long offset = 0;
        foreach (var p in perImage)
        {
            Array.Copy(p.Rows, 0, all, offset, p.Rows.Length);
            offset += p.Rows.Length;
        }
        var pixelValues = tensor(all, new long[] { rows, Config.RowWidth }, ScalarType.Float32);
        var grids = perImage.Select(p => p.Grid).ToArray();
        var tokens = grids.Select(g => (int)(g[0] * g[1] * g[2] / (Config.MergeSize * Config.MergeSize))).ToArray();
        return new ProcessedImages(pixelValues, grids, tokens);
    }

    /// <summary>The resized uint8 image, before rescaling (exposed for parity checks against Pillow).</summary>
    public RgbImage Resize(RgbImage image)
    {
        var (h, w) = ResizedSize(image.Height, image.Width, image.Source);
        return PillowResampler.Resize(image, w, h, Config.Resample);
    }

    private (float[] Rows, long[] Grid) PatchRows(RgbImage image)
    {
        var resized = Resize(image);
        int p = Config.PatchSize, m = Config.MergeSize, frames = Config.TemporalPatchSize;
        int gridH = resized.Height / p, gridW = resized.Width / p;
        int width = resized.Width, rowWidth = Config.RowWidth;
        var rows = new float[(long)gridH * gridW * rowWidth];
        var px = resized.Pixels;
        long r = 0;
        for (int blockRow = 0; blockRow < gridH / m; blockRow++)
            for (int blockCol = 0; blockCol < gridW / m; blockCol++)
                for (int mr = 0; mr < m; mr++)
                    for (int mc = 0; mc < m; mc++, r++)
                    {
                        int top = (blockRow * m + mr) * p, left = (blockCol * m + mc) * p;
                        long o = r * rowWidth;
                        for (int c = 0; c < 3; c++)
                            for (int t = 0; t < frames; t++) // the one frame, repeated
                                for (int y = 0; y < p; y++)
                                    for (int x = 0; x < p; x++)
                                        rows[o++] = levels[c][px[((top + y) * width + left + x) * 3 + c]];
                    }
        return (rows, new long[] { 1, gridH, gridW });
    }
}
