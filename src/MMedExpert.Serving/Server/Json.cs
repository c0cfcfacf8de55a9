using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace MMedExpert.Serving.Server;

/// <summary>How responses are written: compact JSON with '&lt;', '&gt;', '&amp;' and quotes left as they are (as Python's json does).</summary>
public static class Json
{
    static readonly JsonSerializerOptions Options = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static string Write(JsonNode node) => node.ToJsonString(Options);
}
