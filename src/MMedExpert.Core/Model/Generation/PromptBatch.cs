using TorchSharp;
using static TorchSharp.torch;

namespace MMedExpert.Core.Model.Generation;

/// <summary>
/// Prompts to run together: token ids per sample (image pad tokens already expanded to one per merged patch), and the
/// pixel rows [patches, 1176] with grids [images, 3] of all the batch's images, in order of appearance over the samples.
/// </summary>
public sealed record PromptBatch(IReadOnlyList<IReadOnlyList<int>> TokenIds, Tensor? PixelValues = null, Tensor? ImageGridThw = null)
{
    public int Count => TokenIds.Count;

    public static PromptBatch TextOnly(params IReadOnlyList<int>[] prompts) => new(prompts);

    /// <summary>
    /// Left-pads sequences to one length: ids [batch, length] int64 and mask [batch, length] int64 (1 = token, 0 = padding).
    /// Left padding keeps every sequence's last token in the last column, where generation continues.
    /// </summary>
    public static (Tensor Ids, Tensor Mask, bool Padded) LeftPad(IReadOnlyList<IReadOnlyList<int>> sequences, int padId)
    {
        if (sequences.Count == 0) throw new ArgumentException("no sequences to pad");
        int length = sequences.Max(s => s.Count);
        if (length == 0) throw new ArgumentException("every sequence is empty");
        var ids = new long[sequences.Count * length];
        var mask = new long[sequences.Count * length];
        bool padded = false;
        for (int b = 0; b < sequences.Count; b++)
        {
            int pad = length - sequences[b].Count;
            padded |= pad > 0;
            for (int i = 0; i < length; i++)
            {
                ids[b * length + i] = i < pad ? padId : sequences[b][i - pad];
                mask[b * length + i] = i < pad ? 0 : 1;
            }
        }
        return (tensor(ids, new long[] { sequences.Count, length }), tensor(mask, new long[] { sequences.Count, length }), padded);
    }
}
