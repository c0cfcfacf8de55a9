using MMedExpert.Core.Training;

namespace MMedExpert.Serving.Client;

/// <summary>
/// A <see cref="VisionChatSample"/> as chat messages, the way <see cref="VisionChatEncoder"/> renders it locally: the
/// system prompt (the sample's own, else the encoder's default) sent explicitly so the server's template cannot put
/// another in its place, then one user message with the images first (as data URLs) and the text after them.
/// </summary>
public static class SampleMessages
{
    public static IReadOnlyList<ChatRequestMessage> Of(VisionChatSample sample, string? defaultSystemPrompt)
    {
        var messages = new List<ChatRequestMessage>();
        if ((sample.SystemPrompt ?? defaultSystemPrompt) is { } system)
            messages.Add(new ChatRequestMessage("system", new ChatContentPart[] { new TextContentPart(system) }));
        var parts = new List<ChatContentPart>();
        foreach (var path in sample.ImagePaths) parts.Add(new ImageUrlContentPart(ImageDataUrl.FromFile(path)));
        parts.Add(new TextContentPart(sample.UserText));
        messages.Add(new ChatRequestMessage("user", parts));
        return messages;
    }
}
