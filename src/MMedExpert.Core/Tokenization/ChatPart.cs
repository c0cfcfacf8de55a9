namespace MMedExpert.Core.Tokenization;

/// <summary>One piece of a chat message's content: text or an image.</summary>
public abstract record ChatPart;

/// <summary>Plain text, tokenized as written (special-token strings in it are parsed, as the reference does).</summary>
public sealed record TextPart(string Text) : ChatPart;

/// <summary>
/// An image, known to the prompt only by its patch grid from the image preprocessor (image_grid_thw) and the vision
/// merger's spatial merge size. It occupies <see cref="TokenCount"/> &lt;|image_pad|&gt; tokens, one per merged patch:
/// grid_t·grid_h·grid_w / merge_size², as in transformers' Qwen2_5_VLProcessor
/// (`image_grid_thw[index].prod() // merge_length`, merge_length = merge_size**2).
/// </summary>
public sealed record ImagePart(int GridT, int GridH, int GridW, int MergeSize = 2) : ChatPart
{
    public int TokenCount
    {
        get
        {
            if (GridT <= 0 || GridH <= 0 || GridW <= 0 || MergeSize <= 0)
                throw new TokenizerException($"image part: grid (t={GridT}, h={GridH}, w={GridW}) and merge_size {MergeSize} must be positive");
            if (GridH % MergeSize != 0 || GridW % MergeSize != 0)
                throw new TokenizerException($"image part: grid h={GridH}, w={GridW} is not divisible by merge_size {MergeSize}");
            return checked(GridT * GridH * GridW) / (MergeSize * MergeSize);
        }
    }
}
