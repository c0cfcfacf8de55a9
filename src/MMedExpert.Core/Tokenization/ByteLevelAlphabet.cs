namespace MMedExpert.Core.Tokenization;

/// <summary>
/// GPT-2's byte-level alphabet: every byte 0..255 is shown as one printable Unicode character, so BPE vocabularies can
/// be stored as JSON strings. Printable Latin-1 bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') map to themselves; the other 68
/// bytes map, in byte order, to U+0100, U+0101, ... (so a space is 'Ġ' = U+0120 and a newline 'Ċ' = U+010A).
/// </summary>
public static class ByteLevelAlphabet
{
    /// <summary>The character standing for each byte value.</summary>
    public static readonly char[] ByteToChar = BuildByteToChar();

    /// <summary>The byte each alphabet character stands for; -1 for characters outside the alphabet (indexed 0..0x143).</summary>
    static readonly short[] CharToByteTable = BuildCharToByte();

    static char[] BuildByteToChar()
    {
        var map = new char[256];
        int next = 0;
        for (int b = 0; b < 256; b++)
        {
            bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            map[b] = printable ? (char)b : (char)(256 + next++);
        }
        return map;
    }

    static short[] BuildCharToByte()
    {
        var table = new short[256 + 68];
        Array.Fill(table, (short)-1);
        for (int b = 0; b < 256; b++) table[ByteToChar[b]] = (short)b;
        return table;
    }

    /// <summary>The byte <paramref name="c"/> stands for, or -1 when it is not an alphabet character.</summary>
    public static int CharToByte(char c) => c < CharToByteTable.Length ? CharToByteTable[c] : -1;

    /// <summary>The alphabet string of some bytes (how a byte-level token is spelled in tokenizer.json).</summary>
    public static string Encode(ReadOnlySpan<byte> bytes)
    {
        return string.Create(bytes.Length, bytes.ToArray(), static (dst, src) =>
        {
            for (int i = 0; i < src.Length; i++) dst[i] = ByteToChar[src[i]];
        });
    }

    /// <summary>
    /// Appends the bytes a token string stands for. As the reference ByteLevel decoder does, a token with any character
    /// outside the alphabet (an added token such as "&lt;think&gt;\n") contributes its own UTF-8 bytes instead.
    /// </summary>
    public static void AppendBytes(string token, List<byte> output)
    {
        foreach (char c in token)
            if (CharToByte(c) < 0)
            {
                output.AddRange(System.Text.Encoding.UTF8.GetBytes(token));
                return;
            }
        foreach (char c in token) output.Add((byte)CharToByte(c));
    }
}
