namespace MMedExpert.Data.MedSynth;

/// <summary>
/// X-ray-like frontal chest: torso, two dark lung fields, heart and spine, ribs; the lesion is an upper- or lower-zone
/// opacity in one lung, either one well-defined round nodule or several ill-defined patches. Difficulty lowers the
/// contrast, brings the zones towards mid-lung, and adds grain and small calcified granulomas (distractors).
/// </summary>
public static class ChestRadiograph
{
    const double LungTop = 0.20, LungHeight = 0.60;   // lung fields span y ∈ [0.20, 0.80] of the image

    public static SceneResult Draw(Scenario sc, bool upperZone, bool solitary, double d, int size, SeededRandom rng)
    {
        double S = size;
        var c = new Canvas(size, color: false, Rgb.Gray(0.04));
        c.Ellipse(0.5 * S, 0.56 * S, 0.47 * S, 0.52 * S, 1, 0, Rgb.Gray(0.55), 1.0);                 // torso soft tissue
        c.Texture(rng, Math.Max(2, size / 14), 0.03, Rgb.Gray(1));
        foreach (double side in new[] { 0.31, 0.69 })
            c.Ellipse(side * S, 0.5 * S, 0.15 * S, 0.30 * S, 1, 0, Rgb.Gray(0.13), 0.92, edge: 0.25); // lungs (air is dark)
        c.Ellipse(0.5 * S, 0.5 * S, 0.035 * S, 0.5 * S, 1, 0, Rgb.Gray(0.25), 1.0, additive: true);   // spine
        c.Ellipse(0.54 * S, 0.63 * S, 0.11 * S, 0.15 * S, 1, 0, Rgb.Gray(0.62), 0.9, edge: 0.3);     // heart
        for (int k = 0; k < 6; k++)                                                                    // ribs: shallow arcs
            foreach (double sign in new[] { -1.0, 1.0 })
            {
                double y = (0.24 + 0.095 * k) * S;
                double xa = (0.5 + sign * 0.04) * S, xm = (0.5 + sign * 0.25) * S, xb = (0.5 + sign * 0.45) * S;
                c.Stroke(xa, y - 0.02 * S, xm, y - 0.045 * S, 0.012 * S, Rgb.Gray(0.10), 1.0, additive: true);
                c.Stroke(xm, y - 0.045 * S, xb, y + 0.02 * S, 0.012 * S, Rgb.Gray(0.10), 1.0, additive: true);
            }

        double contrast = Scenes.Lerp(0.50, 0.24, d);
        double lungX = rng.Chance(0.5) ? 0.31 : 0.69;
        // Zone band as a fraction of lung height (0 = apex): upper [0.15, u], lower [l, 0.85]; difficulty narrows the gap.
        double yFrac = upperZone ? rng.Uniform(0.15, Scenes.Lerp(0.32, 0.42, d)) : rng.Uniform(Scenes.Lerp(0.68, 0.58, d), 0.85);
        double cx = (lungX + rng.Uniform(-0.05, 0.05)) * S;
        var centres = new List<(double X, double Y)>();
        if (solitary)
        {
            double r = Scenes.Lerp(0.065, 0.05, d) * S * rng.Uniform(0.9, 1.1);
            double cy = (LungTop + yFrac * LungHeight) * S;
            c.Disk(cx, cy, r, Rgb.Gray(contrast), 1.0, edge: 0.2, additive: true);
            centres.Add((cx, cy));
        }
        else
        {
            int n = rng.Int(3, 5);
            for (int i = 0; i < n; i++)
            {
                // Patches stay inside the zone band so the centroid reads the same zone.
                double f = Math.Clamp(yFrac + rng.Uniform(-0.08, 0.08), upperZone ? 0.12 : 0.58, upperZone ? 0.42 : 0.88);
                double px = cx + rng.Uniform(-0.06, 0.06) * S, py = (LungTop + f * LungHeight) * S;
                var (ux, uy) = rng.UnitVector();
                double r = rng.Uniform(0.03, 0.045) * S;
                c.Ellipse(px, py, r * rng.Uniform(1.0, 1.6), r, ux, uy, Rgb.Gray(contrast * 0.8), 1.0, additive: true);
                centres.Add((px, py));
            }
        }
        int granulomas = rng.Chance(d) ? rng.Int(1, 2) : 0;                                           // distractors
        for (int i = 0; i < granulomas; i++)
            c.Disk(rng.Pick(new[] { 0.31, 0.69 }) * S + rng.Uniform(-0.1, 0.1) * S, (LungTop + rng.Uniform(0.1, 0.9) * LungHeight) * S,
                0.012 * S, Rgb.Gray(0.35), 1.0, edge: 0.3, additive: true);
        c.Noise(rng, Scenes.Grain(d));

        double meanFrac = (centres.Average(p => p.Y) / S - LungTop) / LungHeight;
        bool readUpper = meanFrac < 0.5, readSolitary = centres.Count == 1;
        string lung = lungX < 0.5 ? "right" : "left";   // radiological convention: the patient's right is on the image left
        return new SceneResult(c, readUpper, readSolitary,
            $"{sc.First.Image.Describe(readUpper)} ({lung} lung)",
            readSolitary ? sc.Second.Image.WhenTrue : $"{sc.Second.Image.WhenFalse} ({centres.Count} patches)",
            new Dictionary<string, double> { ["zone_fraction"] = meanFrac, ["lesion_count"] = centres.Count, ["contrast"] = contrast });
    }
}
