using System.Runtime.InteropServices;
using TorchSharp;

namespace MMedExpert.Core.IO;

/// <summary>
/// Direct access to a CPU tensor's storage, so files are read into and written from tensor memory without a managed
/// copy (a 7B bf16 checkpoint is ~15.5 GB: a second copy in managed memory would not fit a 24 GiB machine).
/// </summary>
public static unsafe class TensorMemory
{
    [DllImport("LibTorchSharp")]
    static extern IntPtr THSTensor_data(IntPtr handle);

    /// <summary>Chunk size for span-based I/O (spans are limited to int length).</summary>
    const int Chunk = 1 << 30;

    static byte* Pointer(torch.Tensor t)
    {
        if (t.device_type != DeviceType.CPU || !t.is_contiguous()) throw new ArgumentException("tensor must be contiguous on the CPU");
        return (byte*)THSTensor_data(t.Handle);
    }

    /// <summary>Fills a fresh contiguous CPU tensor with <paramref name="count"/> bytes from the file at <paramref name="offset"/>.</summary>
    public static void ReadInto(torch.Tensor t, Microsoft.Win32.SafeHandles.SafeFileHandle file, long offset, long count, string path)
    {
        byte* p = Pointer(t);
        long done = 0;
        while (done < count)
        {
            int n = (int)Math.Min(Chunk, count - done);
            int read = RandomAccess.Read(file, new Span<byte>(p + done, n), offset + done);
            if (read <= 0) throw new SafetensorsException(path, $"unexpected end of file at byte {offset + done}");
            done += read;
        }
    }

    /// <summary>Writes a contiguous CPU tensor's bytes to the stream.</summary>
    public static void WriteTo(torch.Tensor t, Stream stream, long count)
    {
        byte* p = Pointer(t);
        for (long done = 0; done < count; done += Chunk)
            stream.Write(new ReadOnlySpan<byte>(p + done, (int)Math.Min(Chunk, count - done)));
    }
}
