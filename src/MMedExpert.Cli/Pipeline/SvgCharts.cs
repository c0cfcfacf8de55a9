using System.Globalization;
using System.Text;

namespace MMedExpert.Cli.Pipeline;

/// <summary>
/// Two small chart kinds as standalone SVG (no browser or plotting stack needed to write them): bars with
/// confidence intervals, and lines. The notebooks draw the interactive versions with Plotly.NET.
/// </summary>
public static class SvgCharts
{
    static string F(double v) => v.ToString("0.##", CultureInfo.InvariantCulture);
    static string Escape(string s) => s.Replace("&", "&amp;").Replace("<", "&lt;").Replace(">", "&gt;");
    static readonly string[] Palette = { "#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c" };

    /// <summary>Horizontal bars (value in [0, 1]) with [low, high] whiskers, one per label.</summary>
    public static string Bars(string title, IReadOnlyList<(string Label, double Value, double Low, double High)> bars)
    {
        int rowH = 22, left = 230, width = 720, plotW = width - left - 40, top = 40;
        int height = top + bars.Count * rowH + 40;
        var sb = new StringBuilder();
        sb.Append($"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">");
        sb.Append($"<text x=\"{width / 2}\" y=\"20\" text-anchor=\"middle\" font-size=\"14\">{Escape(title)}</text>");
        for (int t = 0; t <= 10; t += 2)
        {
            double x = left + plotW * t / 10.0;
            sb.Append($"<line x1=\"{F(x)}\" y1=\"{top - 5}\" x2=\"{F(x)}\" y2=\"{height - 35}\" stroke=\"#ddd\"/>");
            sb.Append($"<text x=\"{F(x)}\" y=\"{height - 20}\" text-anchor=\"middle\">{t * 10}%</text>");
        }
        for (int i = 0; i < bars.Count; i++)
        {
            var (label, v, lo, hi) = bars[i];
            double y = top + i * rowH;
            sb.Append($"<text x=\"{left - 8}\" y=\"{F(y + 14)}\" text-anchor=\"end\">{Escape(label)}</text>");
            sb.Append($"<rect x=\"{left}\" y=\"{F(y + 3)}\" width=\"{F(plotW * v)}\" height=\"{rowH - 6}\" fill=\"{Palette[0]}\"/>");
            sb.Append($"<line x1=\"{F(left + plotW * lo)}\" y1=\"{F(y + rowH / 2.0)}\" x2=\"{F(left + plotW * hi)}\" y2=\"{F(y + rowH / 2.0)}\" stroke=\"black\"/>");
            foreach (var e in new[] { lo, hi })
                sb.Append($"<line x1=\"{F(left + plotW * e)}\" y1=\"{F(y + 6)}\" x2=\"{F(left + plotW * e)}\" y2=\"{F(y + rowH - 6)}\" stroke=\"black\"/>");
        }
        return sb.Append("</svg>").ToString();
    }

    /// <summary>Lines over a shared x axis (e.g. training step), each series its own colour, with a legend.</summary>
    public static string Lines(string title, string xLabel, IReadOnlyList<(string Name, IReadOnlyList<(double X, double Y)> Points)> series)
    {
        int width = 720, height = 380, left = 60, right = 180, top = 40, bottom = 50;
        var all = series.SelectMany(s => s.Points).ToList();
        if (all.Count == 0) all.Add((0, 0));
        double x0 = all.Min(p => p.X), x1 = Math.Max(all.Max(p => p.X), x0 + 1);
        double y0 = Math.Min(0, all.Min(p => p.Y)), y1 = Math.Max(all.Max(p => p.Y), y0 + 1e-9);
        double Px(double x) => left + (width - left - right) * (x - x0) / (x1 - x0);
        double Py(double y) => height - bottom - (height - top - bottom) * (y - y0) / (y1 - y0);
        var sb = new StringBuilder();
        sb.Append($"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">");
        sb.Append($"<text x=\"{width / 2}\" y=\"20\" text-anchor=\"middle\" font-size=\"14\">{Escape(title)}</text>");
        sb.Append($"<line x1=\"{left}\" y1=\"{height - bottom}\" x2=\"{width - right}\" y2=\"{height - bottom}\" stroke=\"black\"/>");
        sb.Append($"<line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{height - bottom}\" stroke=\"black\"/>");
        sb.Append($"<text x=\"{(left + width - right) / 2}\" y=\"{height - 12}\" text-anchor=\"middle\">{Escape(xLabel)}</text>");
        foreach (var frac in new[] { 0.0, 0.5, 1.0 })
        {
            double y = y0 + frac * (y1 - y0);
            sb.Append($"<text x=\"{left - 6}\" y=\"{F(Py(y) + 4)}\" text-anchor=\"end\">{F(y)}</text>");
        }
        for (int i = 0; i < series.Count; i++)
        {
            var (name, points) = series[i];
            string colour = Palette[i % Palette.Length];
            if (points.Count > 0)
                sb.Append($"<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{string.Join(" ", points.Select(p => $"{F(Px(p.X))},{F(Py(p.Y))}"))}\"/>");
            sb.Append($"<rect x=\"{width - right + 10}\" y=\"{top + i * 18}\" width=\"12\" height=\"12\" fill=\"{colour}\"/>");
            sb.Append($"<text x=\"{width - right + 28}\" y=\"{top + i * 18 + 10}\">{Escape(name)}</text>");
        }
        return sb.Append("</svg>").ToString();
    }
}
