namespace MMedExpert.Data.MedSynth;

/// <summary>
/// MRI-like axial brain slice: skull rim, grey and white matter, two dark lateral ventricles, sulci; 1–3 lesions either
/// periventricular or cortical, all brighter (hyperintense) or darker (hypointense) than the surrounding tissue.
/// Difficulty lowers the lesion contrast, moves the lesions towards mid-depth and adds grain.
/// </summary>
public static class BrainMri
{
    const double Cx = 0.5, Cy = 0.5, Rx = 0.36, Ry = 0.42;   // brain ellipse

    public static SceneResult Draw(Scenario sc, bool periventricular, bool hyperintense, double d, int size, SeededRandom rng)
    {
        double S = size;
        var c = new Canvas(size, color: false, Rgb.Gray(0.02));
        c.Ellipse(Cx * S, Cy * S, 0.42 * S, 0.48 * S, 1, 0, Rgb.Gray(0.80), 1.0, edge: 0.04);      // scalp and skull
        c.Ellipse(Cx * S, Cy * S, 0.39 * S, 0.45 * S, 1, 0, Rgb.Gray(0.10), 1.0, edge: 0.03);      // CSF rim
        c.Ellipse(Cx * S, Cy * S, Rx * S, Ry * S, 1, 0, Rgb.Gray(0.45), 1.0, edge: 0.05);          // grey matter
        c.Ellipse(Cx * S, Cy * S, 0.27 * S, 0.33 * S, 1, 0, Rgb.Gray(0.62), 0.9);                   // white matter
        c.Texture(rng, Math.Max(2, size / 16), 0.025, Rgb.Gray(1));
        for (int k = 0; k < 10; k++)                                                                 // sulci at the rim
        {
            var (ux, uy) = rng.UnitVector();
            c.Stroke((Cx + ux * Rx * 0.98) * S, (Cy + uy * Ry * 0.98) * S, (Cx + ux * Rx * 0.80) * S, (Cy + uy * Ry * 0.80) * S,
                0.008 * S, Rgb.Gray(0.12), 0.8);
        }
        foreach (double side in new[] { -1.0, 1.0 })                                                 // lateral ventricles
            c.Ellipse((Cx + side * 0.045) * S, 0.48 * S, 0.035 * S, 0.10 * S, side * 0.2, 1, Rgb.Gray(0.08), 1.0, edge: 0.3);

        double contrast = Scenes.Lerp(0.34, 0.15, d) * (hyperintense ? 1 : -1);
        int n = rng.Int(1, 3);
        double depthSum = 0;
        for (int i = 0; i < n; i++)
        {
            // Normalised radial depth in the brain ellipse: periventricular [0.22, p], cortical [q, 0.84].
            double depth = periventricular ? rng.Uniform(0.22, Scenes.Lerp(0.36, 0.44, d)) : rng.Uniform(Scenes.Lerp(0.70, 0.58, d), 0.84);
            var (ux, uy) = rng.UnitVector();
            double x = (Cx + ux * Rx * depth) * S, y = (Cy + uy * Ry * depth) * S;
            double r = rng.Uniform(0.028, 0.045) * S;
            var (ax, ay) = rng.UnitVector();
            c.Ellipse(x, y, r * rng.Uniform(1.0, 1.4), r, ax, ay, Rgb.Gray(contrast), 1.0, edge: 0.35, additive: true);
            depthSum += depth;
        }
        c.Noise(rng, Scenes.Grain(d));

        double meanDepth = depthSum / n;
        bool readPeri = meanDepth < 0.5, readHyper = contrast > 0;
        string count = n == 1 ? "single" : $"{n}";
        return new SceneResult(c, readPeri, readHyper,
            $"{sc.First.Image.Describe(readPeri)} ({count} focus{(n == 1 ? "" : "es")})",
            sc.Second.Image.Describe(readHyper),
            new Dictionary<string, double> { ["mean_depth"] = meanDepth, ["lesion_count"] = n, ["contrast"] = contrast });
    }
}
