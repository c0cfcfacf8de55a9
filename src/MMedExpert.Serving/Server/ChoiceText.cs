using System.Text.Json.Nodes;
using MMedExpert.Core.Model.Generation;
using MMedExpert.Core.Tokenization;

namespace MMedExpert.Serving.Server;

/// <summary>
/// One choice of a completion as its tokens arrive: the text (special tokens skipped, as vLLM's skip_special_tokens),
/// stop strings (the text ends before the first one; the engine is told to stop), the logprobs entries, and for
/// streaming the part of the text that is safe to send (not a possible start of a stop string, not half a character).
/// </summary>
public sealed class ChoiceText(int index, Qwen2Tokenizer tokenizer, TokenText tokenText, IReadOnlyList<string> stops,
    bool logprobs, bool tokenIds)
{
    readonly List<int> ids = new();
    readonly int holdBack = stops.Count == 0 ? 0 : stops.Max(s => s.Length) - 1;
    string text = "";
    int sent;

    public int Index => index;
    /// <summary>Tokens generated, a final stop token included (vLLM's completion_tokens).</summary>
    public int CompletionTokens { get; private set; }
    public FinishReason? Finish { get; private set; }
    public string Text => text;
    public JsonArray LogprobsContent { get; } = new();

    /// <summary>Adds a token; returns the new logprobs entry (null when none). True in <paramref name="stopped"/> when a stop string ended the text.</summary>
    public JsonObject? Add(TokenEvent e, out bool stopped)
    {
        stopped = false;
        if (Finish is not null) return null;
        CompletionTokens++;
        if (e.IsStop) return null;
        ids.Add(e.TokenId);
        text = tokenizer.Decode(ids, skipSpecial: true);
        JsonObject? entry = null;
        if (logprobs)
        {
            entry = Entry(e.TokenId, e.LogProb);
            var top = new JsonArray();
            foreach (var (id, lp) in e.Top ?? Array.Empty<(int, float)>()) top.Add(Entry(id, lp));
            entry["top_logprobs"] = top;
            LogprobsContent.Add(entry);
        }
        foreach (var stop in stops)
        {
            int at = text.IndexOf(stop, Math.Max(0, sent - stop.Length), StringComparison.Ordinal);
            if (at < 0) continue;
            text = text[..at];
            Finish = FinishReason.Stop;
            stopped = true;
            break;
        }
        return entry?.DeepClone().AsObject();
    }

    JsonObject Entry(int id, float logProb) => new()
    {
        ["token"] = tokenText.Show(id, tokenIds),
        ["logprob"] = float.IsNegativeInfinity(logProb) ? -9999.0 : logProb,
        ["bytes"] = new JsonArray(tokenText.Bytes(id).Select(b => (JsonNode)(int)b).ToArray()),
    };

    public void End(FinishReason reason) => Finish ??= reason;

    /// <summary>Text not sent yet that can be sent now (all of it once finished).</summary>
    public string TakeDelta()
    {
        int safe = text.Length;
        if (Finish is null)
        {
            safe = Math.Max(sent, text.Length - holdBack);
            if (safe > sent && safe == text.Length && text[^1] == '\uFFFD') safe--;
        }
        if (safe <= sent) return "";
        string delta = text[sent..safe];
        sent = safe;
        return delta;
    }

    public static string FinishName(FinishReason? reason) => reason == FinishReason.Length ? "length" : "stop";
}
