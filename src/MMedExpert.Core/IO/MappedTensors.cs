using System.Collections.Concurrent;
using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;
using TorchSharp;

namespace MMedExpert.Core.IO;

/// <summary>
/// A file mapped copy-on-write (MAP_PRIVATE) whose bytes back CPU tensors directly: loading a tensor costs no copy,
/// its pages come from the page cache on first touch, and writes to the tensor never reach the file. This is how a
/// 15.5 GB checkpoint loads on a 24 GiB machine. The mapping lives until the file object and every tensor made from
/// it are disposed (reference counted through libtorch's deleter callback).
/// </summary>
public sealed unsafe class MappedTensors : IDisposable
{
    // TorchSharp 0.107's native entry point (its own P/Invoke declaration has the same shape): wraps foreign memory
    // in a tensor and calls deleter(data) when libtorch frees it.
    [DllImport("LibTorchSharp")]
    static extern IntPtr THSTensor_new(IntPtr data, IntPtr deleter, long* sizes, int ndim, sbyte type, sbyte dtype,
        int deviceType, int deviceIndex, [MarshalAs(UnmanagedType.U1)] bool requiresGrad);

    static readonly ConcurrentDictionary<IntPtr, MappedTensors> Owners = new();

    readonly MemoryMappedFile file;
    readonly MemoryMappedViewAccessor view;
    readonly byte* basePointer;
    int references = 1;

    public long Length { get; }

    public MappedTensors(string path)
    {
        Length = new FileInfo(path).Length;
        file = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.CopyOnWrite);
        view = file.CreateViewAccessor(0, 0, MemoryMappedFileAccess.CopyOnWrite);
        byte* p = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
        basePointer = p + view.PointerOffset;
    }

    /// <summary>True when a tensor of this element size can start at the offset (libtorch kernels expect alignment).</summary>
    public bool CanMap(long offset, int elementSize) => ((long)(basePointer + offset)) % elementSize == 0;

    /// <summary>A tensor over <paramref name="byteCount"/> bytes at <paramref name="offset"/>; no data is copied.</summary>
    public torch.Tensor Tensor(long offset, long byteCount, long[] shape, torch.ScalarType dtype)
    {
        if (offset < 0 || offset + byteCount > Length || byteCount <= 0) throw new ArgumentOutOfRangeException(nameof(offset));
        IntPtr data = (IntPtr)(basePointer + offset);
        Interlocked.Increment(ref references);
        if (!Owners.TryAdd(data, this))
        {
            Release();
            throw new InvalidOperationException("a tensor already maps this address"); // callers map each entry once
        }
        IntPtr handle;
        fixed (long* sizes = shape)
        {
            handle = THSTensor_new(data, (IntPtr)(delegate* unmanaged<IntPtr, void>)&OnTensorFreed, sizes, shape.Length,
                (sbyte)dtype, (sbyte)dtype, (int)DeviceType.CPU, -1, false);
        }
        if (handle == IntPtr.Zero)
        {
            Owners.TryRemove(data, out _);
            Release();
            torch.CheckForErrors();
        }
        return torch.Tensor.UnsafeCreateTensor(handle);
    }

    [UnmanagedCallersOnly]
    static void OnTensorFreed(IntPtr data)
    {
        if (Owners.TryRemove(data, out var owner)) owner.Release();
    }

    void Release()
    {
        if (Interlocked.Decrement(ref references) != 0) return;
        view.SafeMemoryMappedViewHandle.ReleasePointer();
        view.Dispose();
        file.Dispose();
    }

    /// <summary>Drops the file's own reference; the mapping stays while tensors made from it are alive.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref disposed, 1) == 0) Release();
    }
    int disposed;
}
