using MMedExpert.Core.Model.Generation;
using MMedExpert.Core.Tokenization;
using MMedExpert.Core.Vision;
using TorchSharp;
using static TorchSharp.torch;

namespace MMedExpert.Core.Training;

/// <summary>A batch ready for the model's training forward pass (right-padded).</summary>
public sealed class TrainingBatch : IDisposable
{
    public required Tensor InputIds { get; init; }        // [B, T] int64
    public required Tensor AttentionMask { get; init; }   // [B, T] int64, 1 = token
    /// <summary>[B, T] bool: positions whose NEXT token is an assistant token (the loss positions).</summary>
    public required Tensor LossMask { get; init; }
    public Tensor? PixelValues { get; init; }
    public Tensor? ImageGridThw { get; init; }
    public long Tokens { get; init; }

    public void Dispose()
    {
        InputIds.Dispose(); AttentionMask.Dispose(); LossMask.Dispose();
        PixelValues?.Dispose(); ImageGridThw?.Dispose();
    }
}

/// <summary>
/// Turns <see cref="VisionChatSample"/>s into model inputs through the Qwen2.5-VL chat format and image processor:
/// training batches (with the assistant-token loss mask) and generation prompts.
/// </summary>
public sealed class VisionChatEncoder(Qwen2Tokenizer tokenizer, ImageProcessor images, string? defaultSystemPrompt = Qwen25VLChat.DefaultSystemPrompt)
{
    readonly Qwen25VLChat chat = new(tokenizer, defaultSystemPrompt);
    // Qwen pads with <|endoftext|>; padded positions are masked out anyway.
    readonly int padTokenId = tokenizer.EndOfText;

    public Qwen2Tokenizer Tokenizer => tokenizer;
    /// <summary>The system prompt of samples without their own (null: none); a remote endpoint is sent the same one.</summary>
    public string? DefaultSystemPrompt => defaultSystemPrompt;
    public Qwen25VLChat Chat => chat;
    public ImageProcessor Images => images;
    /// <summary>Generation stops at the end of the assistant turn or of the text.</summary>
    public IReadOnlyList<int> StopTokenIds { get; } = new[] { tokenizer.ImEnd, tokenizer.EndOfText };
    /// <summary>Tokens generation must not produce: the vision placeholders, which only the chat format places (with an image).</summary>
    public IReadOnlyList<int> SuppressTokenIds { get; } = new[]
        {
            Qwen2Tokenizer.ImagePadToken, Qwen2Tokenizer.VideoPadToken, Qwen2Tokenizer.VisionPadToken,
            Qwen2Tokenizer.VisionStartToken, Qwen2Tokenizer.VisionEndToken,
        }
        .Select(tokenizer.TokenToId).OfType<int>().ToArray();

    (ChatEncoding Encoding, ProcessedImages? Images) Encode(VisionChatSample s, bool forGeneration)
    {
        ProcessedImages? processed = s.ImagePaths.Count > 0 ? images.Process(s.ImagePaths) : null;
        var parts = new List<ChatPart>();
        if (processed != null)
            foreach (var g in processed.GridThw)
                parts.Add(new ImagePart((int)g[0], (int)g[1], (int)g[2], images.Config.MergeSize));
        parts.Add(new TextPart(s.UserText));
        var messages = new List<ChatMessage>();
        if (s.SystemPrompt != null) messages.Add(ChatMessage.System(s.SystemPrompt));
        messages.Add(ChatMessage.User(parts.ToArray()));
        if (!forGeneration)
        {
            if (s.AssistantText is null) throw new ArgumentException("a training sample needs the assistant's answer");
            messages.Add(ChatMessage.Assistant(s.AssistantText));
        }
        return (chat.Encode(messages, addGenerationPrompt: forGeneration), processed);
    }

    /// <summary>Prompt ids (ending with the assistant header) and the images of each sample, for generation.</summary>
    public PromptBatch Prompts(IReadOnlyList<VisionChatSample> samples)
    {
        var ids = new List<IReadOnlyList<int>>();
        var pixels = new List<Tensor>();
        var grids = new List<long[]>();
        foreach (var s in samples)
        {
            var (enc, processed) = Encode(s, forGeneration: true);
            ids.Add(enc.Ids);
            if (processed != null) { pixels.Add(processed.PixelValues); grids.AddRange(processed.GridThw); }
        }
        if (pixels.Count == 0) return new PromptBatch(ids);
        var batch = new PromptBatch(ids, cat(pixels, 0), GridTensor(grids));
        foreach (var p in pixels) p.Dispose(); // cat copied them
        return batch;
    }

    static Tensor GridTensor(List<long[]> grids) => tensor(grids.SelectMany(g => g).ToArray(), new long[] { grids.Count, 3 });

    /// <summary>
    /// A right-padded training batch; the loss covers the assistant's tokens (content and &lt;|im_end|&gt;, or the content
    /// only for an <see cref="VisionChatSample.Open"/> sample).
    /// </summary>
    public TrainingBatch Training(IReadOnlyList<VisionChatSample> samples, int maxLength = int.MaxValue)
    {
        var encodings = new List<ChatEncoding>();
        var pixels = new List<Tensor>();
        var grids = new List<long[]>();
        foreach (var s in samples)
        {
            var (enc, processed) = Encode(s, forGeneration: false);
            if (enc.Ids.Length > maxLength)
                throw new ArgumentException($"sample of {enc.Ids.Length} tokens exceeds the maximum length {maxLength}");
            if (s.Open) enc.AssistantMask[Array.LastIndexOf(enc.AssistantMask, true)] = false;   // the turn's <|im_end|>
            encodings.Add(enc);
            if (processed != null) { pixels.Add(processed.PixelValues); grids.AddRange(processed.GridThw); }
        }
        int t = encodings.Max(e => e.Ids.Length);
        int b = encodings.Count;
        var ids = new long[b * t];
        var attention = new long[b * t];
        var loss = new bool[b * t];
        long tokens = 0;
        for (int i = 0; i < b; i++)
        {
            var e = encodings[i];
            for (int j = 0; j < t; j++)
            {
                bool real = j < e.Ids.Length;
                ids[i * t + j] = real ? e.Ids[j] : padTokenId;
                attention[i * t + j] = real ? 1 : 0;
                // Position j predicts token j+1: it is a loss position when token j+1 belongs to the assistant.
                loss[i * t + j] = j + 1 < e.Ids.Length && e.AssistantMask[j + 1];
            }
            tokens += e.Ids.Length;
        }
        var result = new TrainingBatch
        {
            InputIds = tensor(ids, new long[] { b, t }),
            AttentionMask = tensor(attention, new long[] { b, t }),
            LossMask = tensor(loss, new long[] { b, t }),
            PixelValues = pixels.Count == 0 ? null : cat(pixels, 0),
            ImageGridThw = pixels.Count == 0 ? null : GridTensor(grids),
            Tokens = tokens,
        };
        foreach (var p in pixels) p.Dispose();
        return result;
    }
}
