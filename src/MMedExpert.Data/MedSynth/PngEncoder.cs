using System.Buffers.Binary;

namespace MMedExpert.Data.MedSynth;

/// <summary>
/// A small PNG writer (8-bit gray or RGB): per-row filter chosen by the minimum-sum-of-absolute-differences heuristic,
/// then deflate with greedy LZ77 (3-byte hash, bounded chains) and the fixed Huffman code, in a zlib stream.
/// Why our own: it is integer-only managed code, so the same pixels give the same bytes on every machine and runtime,
/// and it is about ten times faster than StbImageWriteSharp's encoder, which dominated MedSynth's time.
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

    const int HashBits = 15, Window = 32768, MaxChain = 8, MinMatch = 3, MaxMatch = 258;

    /// <summary>zlib stream (RFC 1950) holding one final deflate block with the fixed Huffman code.</summary>
    static byte[] Zlib(byte[] data)
    {
        var w = new BitWriter(data.Length / 2 + 64);
        w.Byte(0x78); w.Byte(0x01);              // deflate, 32K window; header check (0x7801 % 31 == 0)
        w.Bits(1, 1); w.Bits(1, 2);              // BFINAL = 1, BTYPE = 01 (fixed Huffman)
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
                WriteLength(w, bestLen);
                WriteDistance(w, bestDist);
                for (int k = 1; k < bestLen; k++)     // index the skipped positions so later matches can find them
                {
                    int p = pos + k;
                    if (p + MinMatch <= data.Length) { int h = Hash(data, p); prev[p] = head[h]; head[h] = p; }
                }
                pos += bestLen;
            }
            else { WriteLiteral(w, data[pos]); pos++; }
        }
        WriteLiteral(w, 256);                      // end of block
        w.Flush();
        uint adler = Adler32(data);
        w.Byte((byte)(adler >> 24)); w.Byte((byte)(adler >> 16)); w.Byte((byte)(adler >> 8)); w.Byte((byte)adler);
        return w.ToArray();
    }

    static int Hash(byte[] d, int p) => ((d[p] << 10) ^ (d[p + 1] << 5) ^ d[p + 2]) & ((1 << HashBits) - 1);

    /// <summary>The fixed Huffman code (RFC 1951 §3.2.6) of each literal/length symbol, bit-reversed for the stream.</summary>
    static readonly (int Code, int Length)[] LiteralCodes = Enumerable.Range(0, 288).Select(sym =>
        sym < 144 ? (Reverse(0x30 + sym, 8), 8) : sym < 256 ? (Reverse(0x190 + sym - 144, 9), 9)
        : sym < 280 ? (Reverse(sym - 256, 7), 7) : (Reverse(0xC0 + sym - 280, 8), 8)).ToArray();

    static readonly int[] DistanceCodes = Enumerable.Range(0, 30).Select(i => Reverse(i, 5)).ToArray();

    /// <summary>Huffman codes go into the stream most significant bit first, while deflate packs bits from the least.</summary>
    static int Reverse(int code, int length)
    {
        int r = 0;
        for (int i = 0; i < length; i++) r |= ((code >> i) & 1) << (length - 1 - i);
        return r;
    }

    static void WriteLiteral(BitWriter w, int sym) { var (code, len) = LiteralCodes[sym]; w.Bits(code, len); }

    static void WriteLength(BitWriter w, int len)
    {
        int i = LengthBase.Length - 1;
        while (LengthBase[i] > len) i--;
        WriteLiteral(w, 257 + i);
        if (LengthExtra[i] > 0) w.Bits(len - LengthBase[i], LengthExtra[i]);
    }

    static void WriteDistance(BitWriter w, int dist)
    {
        int i = DistBase.Length - 1;
        while (DistBase[i] > dist) i--;
        w.Bits(DistanceCodes[i], 5);
        if (DistExtra[i] > 0) w.Bits(dist - DistBase[i], DistExtra[i]);
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
