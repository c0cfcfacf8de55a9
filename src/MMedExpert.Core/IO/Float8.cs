namespace MMedExpert.Core.IO;

/// <summary>
/// Decoding of the two 8-bit float formats of safetensors (OCP FP8): E4M3 "fn" (bias 7, no infinities, S.1111.111 = NaN)
/// and E5M2 (bias 15, IEEE-like infinities and NaNs). Torch has no such dtype here, so they load as float32.
/// </summary>
public static class Float8
{
    static readonly float[] E4M3 = Table(exponentBits: 4, bias: 7, ieeeSpecials: false);
    static readonly float[] E5M2 = Table(exponentBits: 5, bias: 15, ieeeSpecials: true);

    public static float DecodeE4M3(byte b) => E4M3[b];
    public static float DecodeE5M2(byte b) => E5M2[b];

    static float[] Table(int exponentBits, int bias, bool ieeeSpecials)
    {
        int mantissaBits = 7 - exponentBits;
        int maxExp = (1 << exponentBits) - 1;
        var table = new float[256];
        for (int i = 0; i < 256; i++)
        {
            int sign = (i >> 7) & 1, exp = (i >> mantissaBits) & maxExp, man = i & ((1 << mantissaBits) - 1);
            float value;
            if (ieeeSpecials && exp == maxExp) value = man == 0 ? float.PositiveInfinity : float.NaN;
            else if (!ieeeSpecials && exp == maxExp && man == (1 << mantissaBits) - 1) value = float.NaN;
            else if (exp == 0) value = man / (float)(1 << mantissaBits) * MathF.Pow(2, 1 - bias);
            else value = (1 + man / (float)(1 << mantissaBits)) * MathF.Pow(2, exp - bias);
            table[i] = sign == 1 ? -value : value;
        }
        return table;
    }
}
