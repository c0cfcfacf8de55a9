using TorchSharp;

namespace MMedExpert.Core.IO;

/// <summary>The element types of the safetensors format.</summary>
public enum SafetensorsDType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL, F8_E4M3, F8_E5M2 }

public static class SafetensorsDTypes
{
    public static int Size(this SafetensorsDType d) => d switch
    {
        SafetensorsDType.F64 or SafetensorsDType.I64 => 8,
        SafetensorsDType.F32 or SafetensorsDType.I32 => 4,
        SafetensorsDType.F16 or SafetensorsDType.BF16 or SafetensorsDType.I16 => 2,
        _ => 1,
    };

    public static bool TryParse(string text, out SafetensorsDType dtype)
    {
        // Enum.TryParse would accept numbers and other casings; the format's names are exact.
        foreach (var d in Enum.GetValues<SafetensorsDType>())
            if (d.ToString() == text) { dtype = d; return true; }
        dtype = default;
        return false;
    }

    /// <summary>The torch type a tensor of this dtype loads as (fp8 types are converted to float32 on load).</summary>
    public static torch.ScalarType ToScalarType(this SafetensorsDType d) => d switch
    {
        SafetensorsDType.F64 => torch.ScalarType.Float64,
        SafetensorsDType.F32 => torch.ScalarType.Float32,
        SafetensorsDType.F16 => torch.ScalarType.Float16,
        SafetensorsDType.BF16 => torch.ScalarType.BFloat16,
        SafetensorsDType.I64 => torch.ScalarType.Int64,
        SafetensorsDType.I32 => torch.ScalarType.Int32,
        SafetensorsDType.I16 => torch.ScalarType.Int16,
        SafetensorsDType.I8 => torch.ScalarType.Int8,
        SafetensorsDType.U8 => torch.ScalarType.Byte,
        SafetensorsDType.BOOL => torch.ScalarType.Bool,
        SafetensorsDType.F8_E4M3 or SafetensorsDType.F8_E5M2 => torch.ScalarType.Float32,
        _ => throw new ArgumentOutOfRangeException(nameof(d)),
    };

    public static SafetensorsDType FromScalarType(torch.ScalarType t, string file, string tensor) => t switch
    {
        torch.ScalarType.Float64 => SafetensorsDType.F64,
        torch.ScalarType.Float32 => SafetensorsDType.F32,
        torch.ScalarType.Float16 => SafetensorsDType.F16,
        torch.ScalarType.BFloat16 => SafetensorsDType.BF16,
        torch.ScalarType.Int64 => SafetensorsDType.I64,
        torch.ScalarType.Int32 => SafetensorsDType.I32,
        torch.ScalarType.Int16 => SafetensorsDType.I16,
        torch.ScalarType.Int8 => SafetensorsDType.I8,
        torch.ScalarType.Byte => SafetensorsDType.U8,
        torch.ScalarType.Bool => SafetensorsDType.BOOL,
        _ => throw new SafetensorsException(file, $"dtype {t} has no safetensors equivalent", tensor),
    };
}
