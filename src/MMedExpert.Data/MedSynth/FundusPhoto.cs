namespace MMedExpert.Data.MedSynth;

/// <summary>
/// Fundus-like colour photograph: orange retina, bright optic disc (on the right of the image for a right eye), darker
/// macula, vessel arcades leaving the disc; lesions (dark-red haemorrhages or yellow exudates, the kind being a nuisance)
/// cluster around the disc, on its side away from the macula, or around the macula; few (≤ 3) or numerous (≥ 7).
/// Lesions are 7–10 px across at 112 px and the two sites are two merged vision tokens (28 px) apart, so both findings
/// are legible to a 14-px-patch tower (the earlier 2–5 px dots were not: paper/learnability/README.md, section 4).
/// Difficulty lowers lesion contrast, brings the counts towards the threshold of 5, adds grain and faint peripheral
/// drusen-like dots (distractors).
/// </summary>
public static class FundusPhoto
{
    public const int NumerousThreshold = 5;

    public static SceneResult Draw(Scenario sc, bool peripapillary, bool numerous, double d, int size, SeededRandom rng, string eye)
    {
        double S = size;
        var c = new Canvas(size, color: true, new Rgb(0, 0, 0));
        c.Disk(0.5 * S, 0.5 * S, 0.47 * S, new Rgb(0.72, 0.30, 0.12), 1.0, edge: 0.03);           // retina
        c.Disk(0.5 * S, 0.5 * S, 0.40 * S, new Rgb(0.12, 0.06, 0.02), 1.0, additive: true);        // brighter centre
        c.Texture(rng, Math.Max(2, size / 12), 0.03, new Rgb(1.0, 0.5, 0.2));
        double discX = eye == "right" ? 0.70 : 0.30, discY = 0.5 + rng.Uniform(-0.03, 0.03);
        double macX = eye == "right" ? 0.45 : 0.55, macY = 0.52;
        double discR = 0.065;
        c.Disk(macX * S, macY * S, 0.075 * S, new Rgb(0.45, 0.16, 0.08), 0.7);                      // macula
        for (int v = 0; v < 4; v++)                                                                  // vessel arcades
        {
            double dirX = (v < 2 ? -1 : 1) * (eye == "right" ? 1 : -1) * 0.9, dirY = v % 2 == 0 ? -0.45 : 0.45;
            double x = discX * S, y = discY * S, hw = 0.014 * S;
            for (int k = 0; k < 7; k++)
            {
                dirY += rng.Uniform(-0.12, 0.12) + (v % 2 == 0 ? 0.06 : -0.06);   // arcades bend back towards the horizon
                double len = Math.Sqrt(dirX * dirX + dirY * dirY);
                double nx = x + dirX / len * 0.065 * S, ny = y + dirY / len * 0.065 * S;
                c.Stroke(x, y, nx, ny, hw, new Rgb(0.50, 0.10, 0.06), 0.85);
                x = nx; y = ny; hw *= 0.88;
            }
        }
        c.Disk(discX * S, discY * S, discR * S, new Rgb(1.0, 0.86, 0.55), 1.0, edge: 0.25);        // optic disc

        bool haemorrhage = rng.Chance(0.5);
        var colour = haemorrhage ? new Rgb(0.40, 0.04, 0.03) : new Rgb(1.0, 0.92, 0.45);
        double alpha = Scenes.Lerp(1.0, 0.6, d);
        int n = numerous ? rng.Int((int)Math.Round(Scenes.Lerp(8, 6, d)), (int)Math.Round(Scenes.Lerp(11, 8, d)))
                         : rng.Int(1, (int)Math.Round(Scenes.Lerp(2, 4, d)));
        double discDist = 0, macDist = 0;
        for (int i = 0; i < n; i++)
        {
            double x, y;
            if (peripapillary)
            {
                // Around the disc, on its half away from the macula (no lesion between disc and macula), at 1.3–2.3 disc radii.
                double ux, uy;
                do { (ux, uy) = rng.UnitVector(); }
                while (ux * (macX - discX) + uy * (macY - discY) > 0);
                double r = rng.Uniform(1.3, 2.3) * discR;
                x = discX + ux * r; y = discY + uy * r;
            }
            else
            {
                var (ux, uy) = rng.UnitVector();
                double r = rng.Uniform(0.0, Scenes.Lerp(0.09, 0.11, d));
                x = macX + ux * r; y = macY + uy * r;
            }
            double rad = (haemorrhage ? rng.Uniform(0.036, 0.046) : rng.Uniform(0.032, 0.042)) * S;
            c.Disk(x * S, y * S, rad, colour, alpha, edge: haemorrhage ? 0.4 : 0.5);
            discDist += Math.Sqrt((x - discX) * (x - discX) + (y - discY) * (y - discY));
            macDist += Math.Sqrt((x - macX) * (x - macX) + (y - macY) * (y - macY));
        }
        int drusen = rng.Chance(d) ? rng.Int(1, 3) : 0;                                              // distractors
        for (int i = 0; i < drusen; i++)
        {
            var (ux, uy) = rng.UnitVector();
            double r = rng.Uniform(0.36, 0.42);
            c.Disk((0.5 + ux * r) * S, (0.5 + uy * r) * S, 0.01 * S, new Rgb(0.95, 0.85, 0.6), 0.3);
        }
        c.Noise(rng, Scenes.Grain(d));

        bool readPeri = discDist < macDist, readNumerous = n >= NumerousThreshold;
        string kind = haemorrhage ? "haemorrhages" : "exudates";
        return new SceneResult(c, readPeri, readNumerous,
            $"{sc.First.Image.Describe(readPeri)} ({kind})",
            $"{sc.Second.Image.Describe(readNumerous)} ({n})",
            new Dictionary<string, double> { ["lesion_count"] = n, ["mean_disc_distance"] = discDist / n, ["mean_macula_distance"] = macDist / n });
    }
}
