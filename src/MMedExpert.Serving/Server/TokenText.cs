using System.Text;
using MMedExpert.Core.Tokenization;

namespace MMedExpert.Serving.Server;

/// <summary>
/// How a single token is shown in logprobs: its text and its UTF-8 bytes (a byte-level BPE token may be part of a
/// character, so its text alone can be U+FFFD; the bytes are exact), or "token_id:ID" with vLLM's
/// return_tokens_as_token_ids (exact token ids, as GRPO rollouts need).
/// </summary>
public sealed class TokenText(Qwen2Tokenizer tokenizer)
{
    public byte[] Bytes(int id)
    {
        if (tokenizer.IdToToken(id) is not { } token) return Array.Empty<byte>();
        if (tokenizer.IsSpecial(id)) return Encoding.UTF8.GetBytes(token);
        var bytes = new List<byte>(token.Length);
        ByteLevelAlphabet.AppendBytes(token, bytes);
        return bytes.ToArray();
    }

    public string Show(int id, bool asTokenId) => asTokenId ? $"token_id:{id}" : Encoding.UTF8.GetString(Bytes(id));
}
