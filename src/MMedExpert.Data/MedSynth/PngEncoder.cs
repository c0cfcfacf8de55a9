using System.Buffers.Binary;

namespace MMedExpert.Data.MedSynth;

/// <summary>
/// A small PNG writer (8-bit gray or RGB): per-row filter chosen by the minimum-sum-of-absolute-differences heuristic,
/// then deflate with greedy LZ77 (3-byte hash, bounded chains) and dynamic Huffman codes, in a zlib stream.
/// Why our own: it is integer-only managed code, so the same pixels give the same bytes on every machine and runtime,
/// it is several times faster than StbImageWriteSharp's encoder, which dominated MedSynth's time, and its dynamic
/// Huffman codes make the files about half the size of that encoder's fixed-code output.
/// Any PNG decoder reads the files (tests decode them with StbImageSharp).
/// </summary>
public static class PngEncoder
{
    static readonly byte[] Signature = [137, 80, 78, 71, 13, 10, 26, 10];

    public static byte[] Encode(byte[] pixels, int width, int height, int channels)
    {
        if (channels is not (1 or 3)) throw new ArgumentException("channels must be 1 (gray) or 3 (RGB)");
        if (pixels.Length != width * height * channels) throw new ArgumentException($"expected {width * height * channels} bytes, got {pixels.Length}");
        var ms = new MemoryStream();
        ms.Write(Signature);
        var ihdr = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr, width);
        BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), height);
        ihdr[8] = 8; ihdr[9] = (byte)(channels == 1 ? 0 : 2);   // bit depth 8; colour type gray or truecolour
        Chunk(ms, "IHDR", ihdr);
        Chunk(ms, "IDAT", Zlib(Filter(pixels, width, height, channels)));
        Chunk(ms, "IEND", []);
        return ms.ToArray();
    }

    static void Chunk(Stream s, string type, byte[] data)
    {
        Span<byte> head = stackalloc byte[8];
        BinaryPrimitives.WriteInt32BigEndian(head, data.Length);
        for (int i = 0; i < 4; i++) head[4 + i] = (byte)type[i];
        s.Write(head);
        s.Write(data);
        uint crc = Crc32.Update(Crc32.Update(0xFFFFFFFFu, head[4..]), data) ^ 0xFFFFFFFFu;
        Span<byte> tail = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(tail, crc);
        s.Write(tail);
    }

    /// <summary>Each row gets the filter (Sub, Up or Paeth) whose output has the smallest sum of |signed bytes|.</summary>
    static byte[] Filter(byte[] px, int width, int height, int bpp)
    {
        int stride = width * bpp;
        var outBuf = new byte[(stride + 1) * height];
        var rows = new[] { new byte[stride], new byte[stride], new byte[stride] };
        var types = new byte[] { 1, 2, 4 };
        for (int y = 0; y < height; y++)
        {
            int row = y * stride, up = row - stride;
            long sub = 0, upc = 0, pae = 0;
            for (int i = 0; i < stride; i++)
            {
                int x = px[row + i];
                int a = i >= bpp ? px[row + i - bpp] : 0;
                int b = y > 0 ? px[up + i] : 0;
                int c = i >= bpp && y > 0 ? px[up + i - bpp] : 0;
                byte f0 = (byte)(x - a), f1 = (byte)(x - b), f2 = (byte)(x - Paeth(a, b, c));
                rows[0][i] = f0; rows[1][i] = f1; rows[2][i] = f2;
                sub += f0 < 128 ? f0 : 256 - f0; upc += f1 < 128 ? f1 : 256 - f1; pae += f2 < 128 ? f2 : 256 - f2;
            }
            int best = sub <= upc && sub <= pae ? 0 : upc <= pae ? 1 : 2;
            outBuf[y * (stride + 1)] = types[best];
            Array.Copy(rows[best], 0, outBuf, y * (stride + 1) + 1, stride);
        }
        return outBuf;
    }

    static int Paeth(int a, int b, int c)
    {
        int p = a + b - c, pa = Math.Abs(p - a), pb = Math.Abs(p - b), pc = Math.Abs(p - c);
        return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
    }

    // Deflate tables (RFC 1951 §3.2.5): base values and extra bits of the length and distance codes.
    static readonly int[] LengthBase = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258];
    static readonly int[] LengthExtra = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0];
    static readonly int[] DistBase = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577];
    static readonly int[] DistExtra = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13];
    // Order in which the code-length code lengths are sent (RFC 1951 §3.2.7).
    static readonly int[] ClOrder = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15];

    const int HashBits = 15, Window = 32768, MaxChain = 8, MinMatch = 3, MaxMatch = 258;

    /// <summary>LZ77 tokens: a literal byte (Dist = 0) or a (length, distance) back-reference.</summary>
    readonly record struct Token(int Value, int Dist);

    /// <summary>zlib stream (RFC 1950) holding one final deflate block with dynamic Huffman codes built for this image.</summary>
    static byte[] Zlib(byte[] data)
    {
        var tokens = Lz77(data);
        var litFreq = new long[286];
        var distFreq = new long[30];
        foreach (var t in tokens)
        {
            if (t.Dist == 0) litFreq[t.Value]++;
            else { litFreq[257 + LengthSymbol(t.Value)]++; distFreq[DistSymbol(t.Dist)]++; }
        }
        litFreq[256]++;                                             // end of block
        // Decoders need at least two codes in each alphabet to build a complete tree.
        for (int k = 0; k < 2; k++) { litFreq[k] = Math.Max(litFreq[k], 1); distFreq[k] = Math.Max(distFreq[k], 1); }
        var litLen = CodeLengths(litFreq, 15);
        var distLen = CodeLengths(distFreq, 15);
        var litCode = Canonical(litLen);
        var distCode = Canonical(distLen);

        int hlit = 286; while (hlit > 257 && litLen[hlit - 1] == 0) hlit--;
        int hdist = 30; while (hdist > 1 && distLen[hdist - 1] == 0) hdist--;
        var all = litLen.Take(hlit).Concat(distLen.Take(hdist)).ToArray();
        var cl = RunLengths(all);                                   // (symbol, extra value) pairs of the code-length alphabet
        var clFreq = new long[19];
        foreach (var (sym, _) in cl) clFreq[sym]++;
        for (int k = 0; k < 2; k++) clFreq[k] = Math.Max(clFreq[k], 1);
        var clLen = CodeLengths(clFreq, 7);
        var clCode = Canonical(clLen);
        int hclen = 19; while (hclen > 4 && clLen[ClOrder[hclen - 1]] == 0) hclen--;

        var w = new BitWriter(data.Length / 2 + 256);
        w.Byte(0x78); w.Byte(0x01);              // deflate, 32K window; header check (0x7801 % 31 == 0)
        w.Bits(1, 1); w.Bits(2, 2);              // BFINAL = 1, BTYPE = 10 (dynamic Huffman)
        w.Bits(hlit - 257, 5); w.Bits(hdist - 1, 5); w.Bits(hclen - 4, 4);
        for (int i = 0; i < hclen; i++) w.Bits(clLen[ClOrder[i]], 3);
        foreach (var (sym, extra) in cl)
        {
            w.Bits(clCode[sym], clLen[sym]);
            if (sym == 16) w.Bits(extra, 2); else if (sym == 17) w.Bits(extra, 3); else if (sym == 18) w.Bits(extra, 7);
        }
        foreach (var t in tokens)
        {
            if (t.Dist == 0) { w.Bits(litCode[t.Value], litLen[t.Value]); continue; }
            int ls = LengthSymbol(t.Value), ds = DistSymbol(t.Dist);
            w.Bits(litCode[257 + ls], litLen[257 + ls]);
            if (LengthExtra[ls] > 0) w.Bits(t.Value - LengthBase[ls], LengthExtra[ls]);
            w.Bits(distCode[ds], distLen[ds]);
            if (DistExtra[ds] > 0) w.Bits(t.Dist - DistBase[ds], DistExtra[ds]);
        }
        w.Bits(litCode[256], litLen[256]);
        w.Flush();
        uint adler = Adler32(data);
        w.Byte((byte)(adler >> 24)); w.Byte((byte)(adler >> 16)); w.Byte((byte)(adler >> 8)); w.Byte((byte)adler);
        return w.ToArray();
    }

    /// <summary>Greedy LZ77 over a 32K window with a 3-byte hash and chains of at most <see cref="MaxChain"/> candidates.</summary>
    static List<Token> Lz77(byte[] data)
    {
        var tokens = new List<Token>(data.Length / 2);
        var head = new int[1 << HashBits];
        Array.Fill(head, -1);
        var prev = new int[data.Length];
        int pos = 0;
        while (pos < data.Length)
        {
            int bestLen = 0, bestDist = 0;
            if (pos + MinMatch <= data.Length)
            {
                int h = Hash(data, pos);
                int cand = head[h], chain = 0;
                while (cand >= 0 && pos - cand <= Window && chain++ < MaxChain)
                {
                    int len = 0, max = Math.Min(MaxMatch, data.Length - pos);
                    while (len < max && data[cand + len] == data[pos + len]) len++;
                    if (len > bestLen) { bestLen = len; bestDist = pos - cand; if (len == max) break; }
                    cand = prev[cand];
                }
                prev[pos] = head[h]; head[h] = pos;
            }
            if (bestLen >= MinMatch)
            {
                tokens.Add(new Token(bestLen, bestDist));
                for (int k = 1; k < bestLen; k++)     // index the skipped positions so later matches can find them
                {
                    int p = pos + k;
                    if (p + MinMatch <= data.Length) { int h = Hash(data, p); prev[p] = head[h]; head[h] = p; }
                }
                pos += bestLen;
            }
            else { tokens.Add(new Token(data[pos], 0)); pos++; }
        }
        return tokens;
    }

    static int Hash(byte[] d, int p) => ((d[p] << 10) ^ (d[p + 1] << 5) ^ d[p + 2]) & ((1 << HashBits) - 1);

    static int LengthSymbol(int len) { int i = LengthBase.Length - 1; while (LengthBase[i] > len) i--; return i; }

    static int DistSymbol(int dist) { int i = DistBase.Length - 1; while (DistBase[i] > dist) i--; return i; }

    /// <summary>
    /// Huffman code lengths of at most <paramref name="maxBits"/> bits. Ties are broken by symbol index, so the result
    /// is a function of the frequencies alone; when the tree is too deep the frequencies are halved and it is rebuilt.
    /// </summary>
    static int[] CodeLengths(long[] freq, int maxBits)
    {
        var f = (long[])freq.Clone();
        while (true)
        {
            var lengths = HuffmanLengths(f);
            if (lengths.Max() <= maxBits) return lengths;
            for (int i = 0; i < f.Length; i++) if (f[i] > 0) f[i] = Math.Max(1, f[i] / 2);
        }
    }

    static int[] HuffmanLengths(long[] freq)
    {
        int n = freq.Length;
        var parent = new int[2 * n];
        var queue = new PriorityQueue<int, (long, int)>();
        int next = n;
        for (int i = 0; i < n; i++) if (freq[i] > 0) queue.Enqueue(i, (freq[i], i));
        var weight = new long[2 * n];
        Array.Copy(freq, weight, n);
        while (queue.Count > 1)
        {
            queue.TryDequeue(out int a, out var pa);
            queue.TryDequeue(out int b, out var pb);
            weight[next] = pa.Item1 + pb.Item1;
            parent[a] = next; parent[b] = next;
            queue.Enqueue(next, (weight[next], next));
            next++;
        }
        int root = next - 1;
        var lengths = new int[n];
        for (int i = 0; i < n; i++)
        {
            if (freq[i] == 0) continue;
            int depth = 0;
            for (int node = i; node != root; node = parent[node]) depth++;
            lengths[i] = Math.Max(1, depth);
        }
        return lengths;
    }

    /// <summary>Canonical codes from code lengths (RFC 1951 §3.2.2), bit-reversed because deflate packs bits from the least significant.</summary>
    static int[] Canonical(int[] lengths)
    {
        int maxBits = lengths.Max();
        var count = new int[maxBits + 1];
        foreach (var l in lengths) if (l > 0) count[l]++;
        var nextCode = new int[maxBits + 2];
        int code = 0;
        for (int bits = 1; bits <= maxBits; bits++) { code = (code + count[bits - 1]) << 1; nextCode[bits] = code; }
        var codes = new int[lengths.Length];
        for (int i = 0; i < lengths.Length; i++)
            if (lengths[i] > 0) codes[i] = Reverse(nextCode[lengths[i]]++, lengths[i]);
        return codes;
    }

    static int Reverse(int code, int length)
    {
        int r = 0;
        for (int i = 0; i < length; i++) r |= ((code >> i) & 1) << (length - 1 - i);
        return r;
    }

    /// <summary>Code lengths in the code-length alphabet: 0–15 literally, 16 = repeat previous 3–6×, 17/18 = 3–10 / 11–138 zeros.</summary>
    static List<(int Symbol, int Extra)> RunLengths(int[] lengths)
    {
        var outList = new List<(int, int)>();
        int i = 0;
        while (i < lengths.Length)
        {
            int v = lengths[i], run = 1;
            while (i + run < lengths.Length && lengths[i + run] == v) run++;
            if (v == 0 && run >= 3)
            {
                int r = Math.Min(run, 138);
                outList.Add(r >= 11 ? (18, r - 11) : (17, r - 3));
                i += r;
            }
            else if (v != 0 && run >= 4)
            {
                outList.Add((v, 0));
                int r = Math.Min(run - 1, 6);
                outList.Add((16, r - 3));
                i += 1 + r;
            }
            else { outList.Add((v, 0)); i++; }
        }
        return outList;
    }

    static uint Adler32(byte[] data)
    {
        uint a = 1, b = 0;
        for (int start = 0; start < data.Length; start += 5552)   // 5552: the longest run before b can overflow 32 bits
        {
            int end = Math.Min(data.Length, start + 5552);
            for (int i = start; i < end; i++) { a += data[i]; b += a; }
            a %= 65521; b %= 65521;
        }
        return (b << 16) | a;
    }

    /// <summary>Deflate's bit order: values are packed least significant bit first.</summary>
    sealed class BitWriter(int capacity)
    {
        byte[] _buf = new byte[Math.Max(64, capacity)];
        int _len;
        ulong _acc; int _n;

        void Put(byte b)
        {
            if (_len == _buf.Length) Array.Resize(ref _buf, _buf.Length * 2);
            _buf[_len++] = b;
        }

        public void Bits(int value, int count)
        {
            _acc |= (ulong)(uint)value << _n; _n += count;
            while (_n >= 8) { Put((byte)_acc); _acc >>= 8; _n -= 8; }
        }

        public void Flush() { if (_n > 0) { Put((byte)_acc); _acc = 0; _n = 0; } }

        public void Byte(byte b) { Flush(); Put(b); }

        public byte[] ToArray() => _buf[.._len];
    }

    static class Crc32
    {
        static readonly uint[] Table = Build();

        static uint[] Build()
        {
            var t = new uint[256];
            for (uint n = 0; n < 256; n++)
            {
                uint c = n;
                for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
                t[n] = c;
            }
            return t;
        }

        public static uint Update(uint crc, ReadOnlySpan<byte> data)
        {
            foreach (var b in data) crc = Table[(crc ^ b) & 0xFF] ^ (crc >> 8);
            return crc;
        }
    }
}
