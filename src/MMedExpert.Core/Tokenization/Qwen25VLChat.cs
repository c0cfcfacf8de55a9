using System.Text;

namespace MMedExpert.Core.Tokenization;

/// <summary>
/// The Qwen2.5-VL chat format. Facts taken from the model's chat template (chat_template.json of
/// huggingface.co/Qwen/Qwen2.5-VL-7B-Instruct; the same Jinja is reproduced verbatim in many public projects, e.g. as
/// DEFAULT_ROLE_AWARE_QWEN2_VL_CHAT_TEMPLATE) and from huggingface/transformers
/// src/transformers/models/qwen2_5_vl/processing_qwen2_5_vl.py (Qwen2_5_VLProcessor.__call__):
/// <list type="bullet">
/// <item>when the first message is not a system message, "&lt;|im_start|&gt;system\nYou are a helpful assistant.&lt;|im_end|&gt;\n" comes first;</item>
/// <item>every message is "&lt;|im_start|&gt;{role}\n" + content + "&lt;|im_end|&gt;\n" (one newline after the role, one after im_end);</item>
/// <item>content parts are concatenated with nothing between them; an image is "&lt;|vision_start|&gt;&lt;|image_pad|&gt;&lt;|vision_end|&gt;";</item>
/// <item>add_generation_prompt appends "&lt;|im_start|&gt;assistant\n";</item>
/// <item>the processor then replaces each image's single &lt;|image_pad|&gt; by grid_t·grid_h·grid_w / merge_size² copies,
///   and the whole text is tokenized in one call with special tokens parsed.</item>
/// </list>
/// The template has no {% generation %} markers, so the assistant mask is this project's SFT convention (the one common
/// SFT code uses): an assistant message's content and its &lt;|im_end|&gt; are trained on; role headers, the newline after
/// &lt;|im_end|&gt;, system and user turns are not.
/// </summary>
public sealed class Qwen25VLChat
{
    public const string DefaultSystemPrompt = "You are a helpful assistant.";

    static readonly string[] VisionTokens =
    [
        Qwen2Tokenizer.VisionStartToken, Qwen2Tokenizer.VisionEndToken, Qwen2Tokenizer.VisionPadToken,
        Qwen2Tokenizer.ImagePadToken, Qwen2Tokenizer.VideoPadToken,
    ];

    readonly Qwen2Tokenizer _tokenizer;
    readonly string? _defaultSystemPrompt;
    readonly int _imagePad;

    /// <param name="defaultSystemPrompt">System prompt used when the conversation has none; null for none at all.</param>
    public Qwen25VLChat(Qwen2Tokenizer tokenizer, string? defaultSystemPrompt = DefaultSystemPrompt)
    {
        _tokenizer = tokenizer;
        _defaultSystemPrompt = defaultSystemPrompt;
        foreach (var t in new[] { Qwen2Tokenizer.ImStartToken, Qwen2Tokenizer.ImEndToken, Qwen2Tokenizer.VisionStartToken, Qwen2Tokenizer.VisionEndToken })
            tokenizer.RequireToken(t);
        _imagePad = tokenizer.ImagePad;
    }

    /// <summary>The prompt text, images written out as their pad tokens.</summary>
    public string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = false) =>
        RenderWithRanges(messages, addGenerationPrompt).Text;

    public ChatEncoding Encode(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = false)
    {
        var (text, assistantRanges, imageSizes) = RenderWithRanges(messages, addGenerationPrompt);
        var (ids, starts) = _tokenizer.EncodeWithOffsets(text);

        var mask = new bool[ids.Length];
        int r = 0;
        for (int i = 0; i < ids.Length; i++)
        {
            while (r < assistantRanges.Count && starts[i] >= assistantRanges[r].End) r++;
            mask[i] = r < assistantRanges.Count && starts[i] >= assistantRanges[r].Start;
        }

        var spans = new List<(int Start, int Length)>();
        for (int i = 0; i < ids.Length;)
        {
            if (ids[i] != _imagePad) { i++; continue; }
            int j = i;
            while (j < ids.Length && ids[j] == _imagePad) j++;
            spans.Add((i, j - i));
            i = j;
        }
        // Text parts cannot contain vision tokens (checked while rendering), so each run is exactly one image.
        if (spans.Count != imageSizes.Count || spans.Select(s => s.Length).Where((len, k) => len != imageSizes[k]).Any())
            throw new InvalidOperationException("image pad runs do not match the images rendered");
        return new ChatEncoding(ids, mask, spans, text);
    }

    (string Text, List<(int Start, int End)> AssistantRanges, List<int> ImageSizes) RenderWithRanges(
        IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt)
    {
        var sb = new StringBuilder();
        var ranges = new List<(int, int)>();
        var images = new List<int>();
        if (_defaultSystemPrompt != null && (messages.Count == 0 || messages[0].Role != ChatMessage.SystemRole))
            sb.Append(Qwen2Tokenizer.ImStartToken).Append("system\n").Append(_defaultSystemPrompt).Append(Qwen2Tokenizer.ImEndToken).Append('\n');

        for (int m = 0; m < messages.Count; m++)
        {
            var message = messages[m];
            if (message.Role is not (ChatMessage.SystemRole or ChatMessage.UserRole or ChatMessage.AssistantRole))
                throw new TokenizerException($"message {m}: role \"{message.Role}\" is not system, user or assistant");
            sb.Append(Qwen2Tokenizer.ImStartToken).Append(message.Role).Append('\n');
            int contentStart = sb.Length;
            for (int p = 0; p < message.Content.Count; p++)
            {
                switch (message.Content[p])
                {
                    case TextPart t:
                        foreach (var v in VisionTokens)
                            if (t.Text.Contains(v, StringComparison.Ordinal))
                                throw new TokenizerException($"message {m} part {p}: text contains the vision token {v}, which would break image alignment");
                        sb.Append(t.Text);
                        break;
                    case ImagePart img:
                        int count = img.TokenCount;
                        images.Add(count);
                        sb.Append(Qwen2Tokenizer.VisionStartToken);
                        sb.Insert(sb.Length, Qwen2Tokenizer.ImagePadToken, count);
                        sb.Append(Qwen2Tokenizer.VisionEndToken);
                        break;
                    default:
                        throw new TokenizerException($"message {m} part {p}: unsupported content part {message.Content[p]?.GetType().Name ?? "null"}");
                }
            }
            sb.Append(Qwen2Tokenizer.ImEndToken);
            if (message.Role == ChatMessage.AssistantRole) ranges.Add((contentStart, sb.Length));
            sb.Append('\n');
        }
        if (addGenerationPrompt) sb.Append(Qwen2Tokenizer.ImStartToken).Append("assistant\n");
        return (sb.ToString(), ranges, images);
    }
}
