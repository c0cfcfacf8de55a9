using TorchSharp;
using static TorchSharp.torch;

namespace MMedExpert.Core.Model.Text;

/// <summary>The attention mask of a decoder step: causal, with padded keys hidden.</summary>
public static class CausalMask
{
    /// <summary>
    /// For <paramref name="queryLength"/> new positions after <paramref name="pastLength"/> cached ones, with the 2D padding
    /// mask <paramref name="paddingMask"/> [batch, past + new] (1 = token, 0 = padding; null = no padding).
    /// Returns null with <c>Causal</c> = true when the attention kernel's own causal flag is exact (no padding, no past),
    /// null with <c>Causal</c> = false for one unpadded new position, else a boolean mask [batch, 1, new, past + new]
    /// (true = attend). A padding query attends to itself so its row is never empty (an empty row gives NaN, and NaN
    /// values would leak through zero attention weights).
    /// </summary>
    public static (Tensor? Mask, bool Causal) Build(Tensor? paddingMask, long queryLength, long pastLength, Device device)
    {
        long total = pastLength + queryLength;
        bool padded = paddingMask is not null && !paddingMask.all().item<bool>();
        if (!padded && pastLength == 0) return (null, true);
        if (!padded && queryLength == 1) return (null, false);

        using var scope = NewDisposeScope();
        var queryPos = arange(pastLength, total, dtype: ScalarType.Int64, device: device).view(-1, 1);   // [new, 1]
        var keyPos = arange(0, total, dtype: ScalarType.Int64, device: device).view(1, -1);              // [1, total]
        var mask = keyPos.le(queryPos).view(1, 1, queryLength, total);                                   // causal
        if (padded)
        {
            var keyIsToken = paddingMask!.to(device).to_type(ScalarType.Bool).view(-1, 1, 1, total);
            mask = mask.logical_and(keyIsToken).logical_or(keyPos.eq(queryPos).view(1, 1, queryLength, total));
        }
        return (mask.MoveToOuterDisposeScope(), false);
    }
}
