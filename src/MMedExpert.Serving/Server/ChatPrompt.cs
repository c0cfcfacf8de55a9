using MMedExpert.Core;
using MMedExpert.Core.Tokenization;
using MMedExpert.Core.Vision;
using static TorchSharp.torch;

namespace MMedExpert.Serving.Server;

/// <summary>
/// A request's messages as model input: images loaded (<see cref="ImageSource"/>) and processed with the checkpoint's
/// image processor, each placed as an <see cref="ImagePart"/> where it appears, and the conversation encoded with the
/// Qwen2.5-VL chat format plus the generation prompt (the default system prompt when the messages have none), as
/// `mmx generate` and <c>VisionChatEncoder</c> do. Owns the pixel tensors until the engine takes them.
/// </summary>
public sealed class ChatPrompt : IDisposable
{
    public int[] Ids { get; }
    public Tensor? PixelValues { get; private set; }
    public Tensor? GridThw { get; private set; }

    ChatPrompt(int[] ids, Tensor? pixels, Tensor? grid)
    {
        Ids = ids;
        PixelValues = pixels;
        GridThw = grid;
    }

    /// <param name="localMediaRoot">the folder local image files must lie in (<see cref="ServeOptions.LocalMediaRoot"/>)</param>
    public static ChatPrompt Build(IReadOnlyList<RequestMessage> messages, ServedModel served, string? localMediaRoot)
    {
        var images = new List<RgbImage>();
        foreach (var m in messages)
            foreach (var part in m.Content)
                if (part is RequestImage img) images.Add(ImageSource.Load(img.Url, img.Param, localMediaRoot));

        ProcessedImages? processed = null;
        try
        {
            if (images.Count > 0)
            {
                try { processed = served.Images.Process(images); }
                catch (MmxException e) { throw ApiError.BadRequest($"image: {e.Message}", "messages"); }
            }
            int merge = served.Model.Config.Vision.SpatialMergeSize, next = 0;
            var chat = new List<ChatMessage>();
            foreach (var m in messages)
            {
                var parts = new List<ChatPart>();
                foreach (var part in m.Content)
                    parts.Add(part switch
                    {
                        RequestText t => new TextPart(t.Text),
                        RequestImage => ImagePartOf(processed!.GridThw[next++], merge),
                        _ => throw new InvalidOperationException("unknown request part"),
                    });
                chat.Add(new ChatMessage(m.Role, parts));
            }
            int[] ids;
            try { ids = served.Chat.Encode(chat, addGenerationPrompt: true).Ids; }
            catch (TokenizerException e) { throw ApiError.BadRequest(e.Message, "messages"); }
            var prompt = new ChatPrompt(ids, processed?.PixelValues, processed?.GridThwTensor());
            processed = null;   // the prompt owns the pixels now
            return prompt;
        }
        finally { processed?.Dispose(); }
    }

    static ImagePart ImagePartOf(long[] grid, int merge) => new((int)grid[0], (int)grid[1], (int)grid[2], merge);

    /// <summary>Hands the image tensors to the caller (the engine), which disposes them after the prefill.</summary>
    public (Tensor? Pixels, Tensor? Grid) TakeImages()
    {
        var taken = (PixelValues, GridThw);
        PixelValues = null;
        GridThw = null;
        return taken;
    }

    public void Dispose()
    {
        PixelValues?.Dispose();
        GridThw?.Dispose();
    }
}
