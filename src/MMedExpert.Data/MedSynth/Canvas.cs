namespace MMedExpert.Data.MedSynth;

/// <summary>A colour as three linear intensities in [0, 1].</summary>
public readonly record struct Rgb(double R, double G, double B)
{
    public static Rgb Gray(double v) => new(v, v, v);
    public static Rgb operator *(Rgb c, double k) => new(c.R * k, c.G * k, c.B * k);
}

/// <summary>
/// A small raster the MedSynth scenes draw on: soft ellipses, strokes and noise in pixel units, then PNG bytes.
/// Shapes use polynomial fall-offs ((1 − q)², linear edges) instead of exp, so pixels are bit-identical everywhere.
/// </summary>
public sealed class Canvas
{
    // A gray canvas keeps one channel (_g and _b alias _r), so gray scenes cost a third.
    readonly double[] _r, _g, _b;
    public int Size { get; }
    public bool Color { get; }

    public Canvas(int size, bool color, Rgb background)
    {
        Size = size;
        Color = color;
        _r = new double[size * size];
        _g = color ? new double[size * size] : _r;
        _b = color ? new double[size * size] : _r;
        if (color) { Array.Fill(_r, background.R); Array.Fill(_g, background.G); Array.Fill(_b, background.B); }
        else Array.Fill(_r, (background.R + background.G + background.B) / 3);
    }

    /// <summary>Blend weight of a pixel offset (dx, dy) in an ellipse with semi-axes rx, ry along unit axis (ux, uy).</summary>
    static double EllipseWeight(double dx, double dy, double rx, double ry, double ux, double uy, double edge)
    {
        double u = (dx * ux + dy * uy) / rx, v = (-dx * uy + dy * ux) / ry;
        double q = u * u + v * v;
        if (q >= 1) return 0;
        if (edge <= 0) { double s = 1 - q; return s * s; }          // soft: (1 − q)², smooth to zero at the rim
        double d = 1 - Math.Sqrt(q);                                // hard: full inside, linear ramp over `edge`
        return d >= edge ? 1 : d / edge;
    }

    /// <summary>
    /// Draws an ellipse centred at (cx, cy) pixels. <paramref name="edge"/> ≤ 0 gives a soft blob; a positive edge (as a
    /// fraction of the radius) gives a well-defined shape. With <paramref name="additive"/> the colour is added
    /// (times alpha), otherwise pixels are blended towards it.
    /// </summary>
    public void Ellipse(double cx, double cy, double rx, double ry, double ux, double uy, Rgb color, double alpha,
        double edge = 0, bool additive = false)
    {
        double reach = Math.Max(rx, ry);
        int x0 = Math.Max(0, (int)(cx - reach) - 1), x1 = Math.Min(Size - 1, (int)(cx + reach) + 1);
        int y0 = Math.Max(0, (int)(cy - reach) - 1), y1 = Math.Min(Size - 1, (int)(cy + reach) + 1);
        for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++)
        {
            double w = EllipseWeight(x + 0.5 - cx, y + 0.5 - cy, rx, ry, ux, uy, edge) * alpha;
            if (w > 0) Apply(y * Size + x, color, w, additive);
        }
    }

    public void Disk(double cx, double cy, double r, Rgb color, double alpha, double edge = 0, bool additive = false) =>
        Ellipse(cx, cy, r, r, 1, 0, color, alpha, edge, additive);

    /// <summary>A straight stroke of half-width <paramref name="halfWidth"/> pixels with a linear fall-off across it.</summary>
    public void Stroke(double xa, double ya, double xb, double yb, double halfWidth, Rgb color, double alpha, bool additive = false)
    {
        int x0 = Math.Max(0, (int)(Math.Min(xa, xb) - halfWidth) - 1), x1 = Math.Min(Size - 1, (int)(Math.Max(xa, xb) + halfWidth) + 1);
        int y0 = Math.Max(0, (int)(Math.Min(ya, yb) - halfWidth) - 1), y1 = Math.Min(Size - 1, (int)(Math.Max(ya, yb) + halfWidth) + 1);
        double vx = xb - xa, vy = yb - ya, len2 = vx * vx + vy * vy;
        for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++)
        {
            double px = x + 0.5 - xa, py = y + 0.5 - ya;
            double t = len2 > 0 ? Math.Clamp((px * vx + py * vy) / len2, 0, 1) : 0;
            double dx = px - t * vx, dy = py - t * vy;
            double d = Math.Sqrt(dx * dx + dy * dy);
            if (d < halfWidth) Apply(y * Size + x, color, (1 - d / halfWidth) * alpha, additive);
        }
    }

    /// <summary>Adds zero-mean grain of standard deviation <paramref name="std"/>, the same on every channel.</summary>
    public void Noise(SeededRandom rng, double std)
    {
        if (std <= 0) return;
        for (int i = 0; i < _r.Length; i++)
        {
            double n = rng.FastGaussian() * std;
            _r[i] += n;
            if (Color) { _g[i] += n; _b[i] += n; }
        }
    }

    /// <summary>Smooth texture: noise on a coarse grid (one value per <paramref name="cell"/> pixels), bilinearly interpolated.</summary>
    public void Texture(SeededRandom rng, int cell, double std, Rgb tint)
    {
        if (std <= 0) return;
        int g = Size / cell + 2;
        var grid = new double[g * g];
        for (int i = 0; i < grid.Length; i++) grid[i] = rng.Gaussian() * std;
        for (int y = 0; y < Size; y++)
        for (int x = 0; x < Size; x++)
        {
            double fx = (double)x / cell, fy = (double)y / cell;
            int ix = (int)fx, iy = (int)fy;
            double tx = fx - ix, ty = fy - iy;
            double v = grid[iy * g + ix] * (1 - tx) * (1 - ty) + grid[iy * g + ix + 1] * tx * (1 - ty)
                     + grid[(iy + 1) * g + ix] * (1 - tx) * ty + grid[(iy + 1) * g + ix + 1] * tx * ty;
            int k = y * Size + x;
            if (Color) { _r[k] += v * tint.R; _g[k] += v * tint.G; _b[k] += v * tint.B; }
            else _r[k] += v * (tint.R + tint.G + tint.B) / 3;
        }
    }

    void Apply(int k, Rgb c, double w, bool additive)
    {
        if (!Color)
        {
            double v = (c.R + c.G + c.B) / 3;
            _r[k] += additive ? v * w : (v - _r[k]) * w;
            return;
        }
        if (additive) { _r[k] += c.R * w; _g[k] += c.G * w; _b[k] += c.B * w; }
        else { _r[k] += (c.R - _r[k]) * w; _g[k] += (c.G - _g[k]) * w; _b[k] += (c.B - _b[k]) * w; }
    }

    static byte ToByte(double v) => v <= 0 ? (byte)0 : v >= 1 ? (byte)255 : (byte)(v * 255 + 0.5);

    /// <summary>The pixels as bytes: one gray channel (mean of R, G, B) or interleaved RGB.</summary>
    public byte[] ToBytes()
    {
        int n = Size * Size;
        if (!Color)
        {
            var gray = new byte[n];
            for (int i = 0; i < n; i++) gray[i] = ToByte(_r[i]);
            return gray;
        }
        var rgb = new byte[n * 3];
        for (int i = 0; i < n; i++) { rgb[3 * i] = ToByte(_r[i]); rgb[3 * i + 1] = ToByte(_g[i]); rgb[3 * i + 2] = ToByte(_b[i]); }
        return rgb;
    }

    /// <summary>PNG bytes (gray or RGB) from the project's deterministic encoder.</summary>
    public byte[] ToPng() => PngEncoder.Encode(ToBytes(), Size, Size, Color ? 3 : 1);
}
