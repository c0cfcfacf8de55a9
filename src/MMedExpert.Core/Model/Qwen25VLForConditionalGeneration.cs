using MMedExpert.Core.Model.Text;
using MMedExpert.Core.Model.Vision;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MMedExpert.Core.Model;

/// <summary>
/// Qwen2.5-VL: the vision tower (`visual`), the language model (`model`: embed_tokens, layers, norm) and the output
/// projection (`lm_head`, absent when tied to the embeddings). Field names are the state-dict keys of the published
/// checkpoints in their original naming (visual.*, model.*, lm_head.*); <see cref="Qwen25VLWeights"/> maps the newer one.
/// </summary>
public sealed class Qwen25VLForConditionalGeneration : nn.Module
{
    public readonly Qwen25VisionTransformer visual;
    public readonly Qwen25VLTextModel model;
    public readonly AdaptableLinear? lm_head;

    public Qwen25VLConfig Config { get; }

    /// <param name="dtype">the dtype the parameters are created in (the language model directly in it, so a bf16 7B model never
    /// exists in fp32; the much smaller vision tower is created in fp32 and converted)</param>
    public Qwen25VLForConditionalGeneration(Qwen25VLConfig config, ScalarType dtype = ScalarType.Float32) : base(nameof(Qwen25VLForConditionalGeneration))
    {
        Config = config.Validate();
        visual = new Qwen25VisionTransformer("visual", config.Vision);
        if (dtype != ScalarType.Float32) visual.to(dtype);
        model = new Qwen25VLTextModel(config, dtype);
        if (!config.TieWordEmbeddings) lm_head = new AdaptableLinear(nameof(lm_head), config.HiddenSize, config.VocabSize, hasBias: false, dtype: dtype);
        RegisterComponents();
    }

    /// <summary>The dtype of the language model's weights (inputs are cast to it).</summary>
    public ScalarType DType => model.embed_tokens.weight!.dtype;

    public Device Device => model.embed_tokens.weight!.device;

    /// <summary>
    /// Token embeddings [batch, seq, hidden] with the vision tower's features written over the image pad tokens, in the
    /// order of the pad tokens over the batch (row-major), as masked_scatter does in the reference.
    /// </summary>
    public Tensor EmbedInputs(Tensor inputIds, Tensor? pixelValues = null, Tensor? imageGridThw = null)
    {
        using var scope = NewDisposeScope();
        var embeds = model.embed_tokens.forward(inputIds);
        var isImage = inputIds.eq(Config.ImageTokenId);
        long imageTokens = isImage.sum().item<long>();
        if (pixelValues is null)
        {
            if (imageTokens > 0) throw new ArgumentException($"the token ids hold {imageTokens} image pad tokens (id {Config.ImageTokenId}) but no pixel values were given");
            return embeds.MoveToOuterDisposeScope();
        }
        if (imageGridThw is null) throw new ArgumentException("pixel values were given without image_grid_thw");
        var features = visual.forward(pixelValues.to(Device).to_type(visual.parameters().First().dtype), imageGridThw.to(Device));
        if (features.shape[0] != imageTokens)
            throw new ArgumentException($"image features and image tokens do not match: the vision tower gave {features.shape[0]} features, the token ids hold {imageTokens} image pad tokens");
        var mask = isImage.unsqueeze(-1).expand_as(embeds);
        return embeds.masked_scatter(mask, features.to_type(embeds.dtype)).MoveToOuterDisposeScope();
    }

    /// <summary>M-RoPE positions [3, batch, seq] and rope deltas [batch] of a batch (see <see cref="RopeIndex"/>).</summary>
    public (Tensor PositionIds, Tensor RopeDeltas) GetRopeIndex(Tensor inputIds, Tensor? imageGridThw = null, Tensor? attentionMask = null) =>
        RopeIndex.Compute(Config, inputIds, imageGridThw, attentionMask);

    /// <summary>Vocabulary logits of hidden states [..., hidden] (through the tied embedding matrix when lm_head is absent).</summary>
    public Tensor Logits(Tensor hidden) =>
        lm_head is not null ? lm_head.forward(hidden) : MixedPrecision.Linear(hidden, model.embed_tokens.weight!, null, ComputeDType);

    /// <summary>Compute dtype of the tied output projection (set with the linear layers by <see cref="MixedPrecision.Apply"/>).</summary>
    public ScalarType? ComputeDType { get; set; }

    /// <summary>
    /// Last hidden states [batch, seq, hidden] of a (left-)padded batch, positions from <see cref="GetRopeIndex"/>; with a
    /// cache, the cache is filled (prefill). Images: pixel values [patches, 1176] and grids [images, 3] for the batch.
    /// </summary>
    public (Tensor Hidden, Tensor RopeDeltas) Prefill(Tensor inputIds, Tensor? attentionMask = null, Tensor? pixelValues = null,
        Tensor? imageGridThw = null, KvCache? cache = null)
    {
        using var scope = NewDisposeScope();
        var embeds = EmbedInputs(inputIds, pixelValues, imageGridThw);
        var (positions, deltas) = GetRopeIndex(inputIds, imageGridThw, attentionMask);
        var hidden = model.forward(embeds, positions.to(Device), attentionMask?.to(Device), cache);
        return (hidden.MoveToOuterDisposeScope(), deltas.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// One decoding step after a prefill: the new tokens [batch, n] go in at cache position <c>cache.Length</c>, text
    /// positions continue at (cache length + rope delta). <paramref name="attentionMask"/> covers cache + new tokens.
    /// Returns the last hidden states [batch, n, hidden].
    /// </summary>
    public Tensor DecodeStep(Tensor inputIds, Tensor ropeDeltas, KvCache cache, Tensor? attentionMask = null)
    {
        using var scope = NewDisposeScope();
        long b = inputIds.shape[0], n = inputIds.shape[1];
        var embeds = model.embed_tokens.forward(inputIds.to(Device));
        var steps = arange(cache.Length, cache.Length + n, dtype: ScalarType.Int64, device: Device).view(1, n);
        var positions = (steps + ropeDeltas.to(Device).view(b, 1)).unsqueeze(0).expand(3, b, n);
        return model.forward(embeds, positions, attentionMask?.to(Device), cache).MoveToOuterDisposeScope();
    }

    /// <summary>Logits [batch, seq, vocab] of a whole (left-)padded batch, no cache: the training and scoring path.</summary>
    public Tensor forward(Tensor inputIds, Tensor? attentionMask = null, Tensor? pixelValues = null, Tensor? imageGridThw = null)
    {
        using var scope = NewDisposeScope();
        var (hidden, _) = Prefill(inputIds, attentionMask, pixelValues, imageGridThw);
        return Logits(hidden).MoveToOuterDisposeScope();
    }

    /// <summary>Number of parameters (the tied embedding counted once).</summary>
    public long ParameterCount() => parameters().Sum(p => p.numel());
}
