using System.Text.Json;
using System.Text.Json.Nodes;
using MMedExpert.Core.Model;

namespace MMedExpert.Core.Export;

/// <summary>
/// generation_config.json of an export (transformers' GenerationConfig.from_pretrained, vLLM's default sampling
/// parameters and stop ids): bos, pad, and eos as a list — &lt;|im_end|&gt; (end of an assistant turn) then
/// &lt;|endoftext|&gt;, as Qwen2.5-VL's Hub file lists them and as `mmx generate` stops. No sampling settings: the
/// loaders' defaults (greedy in transformers) apply.
/// </summary>
public static class HfGenerationConfig
{
    public const string FileName = "generation_config.json";

    /// <param name="endOfText">The id of &lt;|endoftext|&gt; when the export has a tokenizer (null: the config's ids only).</param>
    public static JsonObject ToJson(Qwen25VLConfig config, int? endOfText)
    {
        var o = new JsonObject();
        if (config.BosTokenId is int bos) o["bos_token_id"] = bos;
        var eos = new List<int>();
        if (config.EosTokenId is int e) eos.Add(e);
        if (endOfText is int t && !eos.Contains(t)) eos.Add(t);
        if (eos.Count == 1) o["eos_token_id"] = eos[0];
        else if (eos.Count > 1) o["eos_token_id"] = new JsonArray(eos.Select(i => (JsonNode)i).ToArray());
        if (config.PadTokenId is int pad) o["pad_token_id"] = pad;
        o["transformers_version"] = HfModelConfig.TransformersVersion;
        return o;
    }

    public static void Write(string dir, Qwen25VLConfig config, int? endOfText) =>
        File.WriteAllText(Path.Combine(dir, FileName), ToJson(config, endOfText).ToJsonString(HfModelConfig.Json) + "\n");
}
