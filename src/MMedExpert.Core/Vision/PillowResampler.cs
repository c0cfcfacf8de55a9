namespace MMedExpert.Core.Vision;

/// <summary>Resampling filters, numbered as Pillow's (and preprocessor_config.json's "resample").</summary>
public enum ResampleFilter
{
    Bilinear = 2,
    Bicubic = 3,
}

/// <summary>
/// Resizes 8-bit RGB images exactly as Pillow's <c>Image.resize</c> does for 8-bit images (libImaging/Resample.c),
/// which is what the reference image processor calls: a separable convolution, horizontal pass first, then vertical.
/// For each output pixel the filter is centred on the source position (x + 0.5)·scale; when downscaling its support
/// is widened by the scale (antialiasing). Weights are normalised to sum 1, converted to fixed point with 22
/// fractional bits, and each pass rounds and clips to uint8 — so the intermediate image is uint8 too. Bicubic uses
/// Keys' kernel with a = -0.5 and support 2; bilinear the triangle with support 1.
/// </summary>
public static class PillowResampler
{
    private const int PrecisionBits = 32 - 8 - 2;

    public static RgbImage Resize(RgbImage image, int width, int height, ResampleFilter filter = ResampleFilter.Bicubic)
    {
        if (width <= 0 || height <= 0)
            throw new ImageProcessingException($"{image.Source}: resize target must be positive, got {width}×{height}");
        if (width == image.Width && height == image.Height)
            return new RgbImage(width, height, (byte[])image.Pixels.Clone(), image.Source);

        var pixels = image.Pixels;
        int srcWidth = image.Width;
        if (width != image.Width)
        {
            pixels = Horizontal(pixels, srcWidth, image.Height, width, Coefficients(srcWidth, width, filter));
            srcWidth = width;
        }
        if (height != image.Height)
            pixels = Vertical(pixels, srcWidth, image.Height, height, Coefficients(image.Height, height, filter));
        return new RgbImage(width, height, pixels, image.Source);
    }

    /// <summary>Per output index: first source index, number of taps, and the fixed-point weights.</summary>
    private sealed record Taps(int[] First, int[] Count, int[][] Weights);

    private static Taps Coefficients(int inSize, int outSize, ResampleFilter filter)
    {
        double support0 = filter == ResampleFilter.Bicubic ? 2.0 : 1.0;
        double scale = (double)inSize / outSize;
        double filterScale = Math.Max(scale, 1.0);
        double support = support0 * filterScale;
        double ss = 1.0 / filterScale;

        var first = new int[outSize];
        var count = new int[outSize];
        var weights = new int[outSize][];
        for (int xx = 0; xx < outSize; xx++)
        {
            double center = (xx + 0.5) * scale;
            int xmin = Math.Max(0, (int)(center - support + 0.5)); // C cast: truncation, as Pillow
            int xmax = Math.Min(inSize, (int)(center + support + 0.5)) - xmin;
            var w = new double[Math.Max(xmax, 0)];
            double sum = 0.0;
            for (int x = 0; x < xmax; x++)
            {
                w[x] = Kernel(filter, (x + xmin - center + 0.5) * ss);
                sum += w[x];
            }
            var fixedPoint = new int[w.Length];
            for (int x = 0; x < w.Length; x++)
            {
                double k = sum != 0.0 ? w[x] / sum : w[x];
                fixedPoint[x] = k < 0 ? (int)(-0.5 + k * (1 << PrecisionBits)) : (int)(0.5 + k * (1 << PrecisionBits));
            }
            first[xx] = xmin;
            count[xx] = w.Length;
            weights[xx] = fixedPoint;
        }
        return new Taps(first, count, weights);
    }

    private static double Kernel(ResampleFilter filter, double x)
    {
        if (x < 0.0) x = -x;
        if (filter == ResampleFilter.Bilinear)
            return x < 1.0 ? 1.0 - x : 0.0;
        const double a = -0.5;
        if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
        if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
        return 0.0;
    }

    /// <summary>Rounds the fixed-point sum (it starts at one half) and clips to 0..255.</summary>
    private static byte Clip8(int sum)
    {
        int v = sum >> PrecisionBits;
        return (byte)(v < 0 ? 0 : v > 255 ? 255 : v);
    }

    private static byte[] Horizontal(byte[] src, int srcWidth, int rows, int outWidth, Taps taps)
    {
        var dst = new byte[(long)outWidth * rows * 3];
        for (int y = 0; y < rows; y++)
        {
            int rowIn = y * srcWidth * 3, rowOut = y * outWidth * 3;
            for (int xx = 0; xx < outWidth; xx++)
            {
                int s0 = 1 << (PrecisionBits - 1), s1 = s0, s2 = s0;
                var k = taps.Weights[xx];
                int p = rowIn + taps.First[xx] * 3;
                for (int x = 0; x < taps.Count[xx]; x++, p += 3)
                {
                    s0 += src[p] * k[x];
                    s1 += src[p + 1] * k[x];
                    s2 += src[p + 2] * k[x];
                }
                dst[rowOut + xx * 3] = Clip8(s0);
                dst[rowOut + xx * 3 + 1] = Clip8(s1);
                dst[rowOut + xx * 3 + 2] = Clip8(s2);
            }
        }
        return dst;
    }

    private static byte[] Vertical(byte[] src, int width, int srcRows, int outRows, Taps taps)
    {
        var dst = new byte[(long)width * outRows * 3];
        int stride = width * 3;
        for (int yy = 0; yy < outRows; yy++)
        {
            var k = taps.Weights[yy];
            int top = taps.First[yy] * stride;
            for (int i = 0; i < stride; i++)
            {
                int s = 1 << (PrecisionBits - 1);
                int p = top + i;
                for (int y = 0; y < taps.Count[yy]; y++, p += stride)
                    s += src[p] * k[y];
                dst[yy * stride + i] = Clip8(s);
            }
        }
        return dst;
    }
}
