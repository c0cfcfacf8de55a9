namespace MMedExpert.Data.MedSynth;

/// <summary>
/// Histology-like H&amp;E field at low power: pink stroma with fibres, 7–16 cells with pale cytoplasm and purple nuclei.
/// Nuclear size (small uniform vs enlarged pleomorphic) and cell shape (round vs spindle, spindles aligned in a fascicle)
/// carry the findings; cell density and stain tone are nuisances. Nuclei are 8–13 px across at 112 px (spindles up to
/// 25 px long), so size and elongation are legible to a 14-px-patch tower (the earlier 2–4 px nuclei were not:
/// paper/learnability/README.md, section 4). Difficulty shrinks the size ratio and the elongation and adds grain.
/// </summary>
public static class Histology
{
    public const double BaseRadius = 0.036;        // small nuclei: equivalent radius as a fraction of the image
    public const double EnlargedThreshold = 1.17;  // mean radius / base above which nuclei read as enlarged
    public const double SpindleThreshold = 1.45;   // mean long/short axis ratio above which cells read as spindles

    public static SceneResult Draw(Scenario sc, bool enlarged, bool spindle, double d, int size, SeededRandom rng)
    {
        double S = size;
        double tone = rng.Uniform(-0.04, 0.04);
        var c = new Canvas(size, color: true, new Rgb(0.93 + tone, 0.70 + tone, 0.82));
        c.Texture(rng, Math.Max(2, size / 10), 0.04, new Rgb(0.3, 0.8, 0.5));
        for (int k = 0; k < 14; k++)                                                                 // stromal fibres
        {
            double x = rng.Uniform(0, S), y = rng.Uniform(0, S);
            var (ux, uy) = rng.UnitVector();
            double len = rng.Uniform(0.15, 0.35) * S;
            c.Stroke(x, y, x + ux * len, y + uy * len, 0.006 * S, new Rgb(0.80, 0.42, 0.62), 0.35);
        }

        double ratio = enlarged ? Scenes.Lerp(1.6, 1.3, d) : 1.0;
        double jitter = enlarged ? 0.25 : 0.08;   // pleomorphism: enlarged nuclei also vary more in size
        double elong = spindle ? Scenes.Lerp(4.5, 2.5, d) : 1.0;
        // Fascicle direction of spindle cells: sections are cut along the fascicle and mounted with it horizontal (within
        // 15°). Elongation in one known direction is a linear patch feature (horizontal minus vertical edge energy, zero for
        // round cells of any size); "elongated along either axis" is not, and a probe on pooled tower features read it at
        // about 62 % where the axis was random (paper/learnability/README.md).
        double angle = rng.Uniform(-Math.PI / 12, Math.PI / 12);
        var (fx, fy) = (Math.Cos(angle), Math.Sin(angle));
        int grid = rng.Int(3, 4);
        double cell = S / grid;
        double sumRadius = 0, sumAspect = 0;
        int n = 0;
        for (int gy = 0; gy < grid; gy++)
        for (int gx = 0; gx < grid; gx++)
        {
            if (rng.Chance(0.12)) continue;        // gaps: density is a nuisance
            double x = (gx + 0.5 + rng.Uniform(-0.25, 0.25)) * cell, y = (gy + 0.5 + rng.Uniform(-0.25, 0.25)) * cell;
            // Enlarged nuclei vary in size but none falls below the reading threshold: with 7 cells and ±25 % the mean
            // could otherwise cross it at high difficulty (ratio 1.3), and the drawn finding would not be the intended one.
            double low = enlarged ? Math.Max(-jitter, EnlargedThreshold * 1.02 / ratio - 1) : -jitter;
            double req = BaseRadius * S * ratio * (1 + rng.Uniform(low, jitter));
            double aspect = spindle ? elong * rng.Uniform(0.9, 1.1) : rng.Uniform(1.0, 1.15);
            double a = req * Math.Sqrt(aspect), b = req / Math.Sqrt(aspect);
            double ux, uy;
            if (spindle) { (ux, uy) = (fx + rng.Uniform(-0.15, 0.15), fy + rng.Uniform(-0.15, 0.15)); double l = Math.Sqrt(ux * ux + uy * uy); ux /= l; uy /= l; }
            else (ux, uy) = rng.UnitVector();
            c.Ellipse(x, y, a * 1.9, b * 1.9 + 0.01 * S, ux, uy, new Rgb(0.96, 0.80, 0.90), 0.7, edge: 0.3);   // cytoplasm
            c.Ellipse(x, y, a, b, ux, uy, new Rgb(0.33, 0.17, 0.52), 0.95, edge: 0.3);                           // nucleus
            c.Disk(x + rng.Uniform(-0.3, 0.3) * b, y + rng.Uniform(-0.3, 0.3) * b, Math.Max(0.6, 0.3 * b),
                new Rgb(0.2, 0.08, 0.35), 0.6);                                                                   // chromatin
            sumRadius += req; sumAspect += aspect; n++;
        }
        c.Noise(rng, Scenes.Grain(d));

        double meanRel = sumRadius / n / (BaseRadius * S), meanAspect = sumAspect / n;
        bool readEnlarged = meanRel > EnlargedThreshold, readSpindle = meanAspect > SpindleThreshold;
        return new SceneResult(c, readEnlarged, readSpindle,
            sc.First.Image.Describe(readEnlarged), sc.Second.Image.Describe(readSpindle),
            new Dictionary<string, double> { ["mean_relative_radius"] = meanRel, ["mean_aspect"] = meanAspect, ["cells"] = n });
    }
}
