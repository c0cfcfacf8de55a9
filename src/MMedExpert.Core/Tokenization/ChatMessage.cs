namespace MMedExpert.Core.Tokenization;

/// <summary>One turn of a conversation: a role (system, user or assistant) and its content parts in order.</summary>
public sealed record ChatMessage(string Role, IReadOnlyList<ChatPart> Content)
{
    public const string SystemRole = "system", UserRole = "user", AssistantRole = "assistant";

    public static ChatMessage System(string text) => new(SystemRole, [new TextPart(text)]);
    public static ChatMessage User(string text) => new(UserRole, [new TextPart(text)]);
    public static ChatMessage User(params ChatPart[] parts) => new(UserRole, parts);
    public static ChatMessage Assistant(string text) => new(AssistantRole, [new TextPart(text)]);
}
