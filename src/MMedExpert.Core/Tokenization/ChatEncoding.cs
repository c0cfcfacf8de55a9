namespace MMedExpert.Core.Tokenization;

/// <summary>
/// A tokenized conversation. <paramref name="AssistantMask"/>[i] is true for the tokens a model is trained to produce
/// (each assistant message's content and its closing &lt;|im_end|&gt;; not the role header, not the newline after).
/// <paramref name="ImageSpans"/> lists, per image in order, the run of &lt;|image_pad|&gt; tokens its vision embeddings
/// replace (index of the first pad in <paramref name="Ids"/>, number of pads). <paramref name="Text"/> is the rendered
/// prompt before tokenization, each image's pads written out.
/// </summary>
public sealed record ChatEncoding(int[] Ids, bool[] AssistantMask, IReadOnlyList<(int Start, int Length)> ImageSpans, string Text);
