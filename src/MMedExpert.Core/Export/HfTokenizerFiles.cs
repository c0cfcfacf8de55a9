using System.Text.Json;
using System.Text.Json.Nodes;
using MMedExpert.Core.Model;
using MMedExpert.Core.Tokenization;

namespace MMedExpert.Core.Export;

/// <summary>
/// The tokenizer files of an export: tokenizer.json copied as is (the fast tokenizer every loader reads) and a
/// tokenizer_config.json in the form of Qwen2.5-VL's Hub file (what AutoTokenizer/AutoProcessor read for the class, the
/// special tokens and the chat template; vLLM reads it through transformers): tokenizer_class Qwen2Tokenizer,
/// added_tokens_decoder for every added token of tokenizer.json, eos "&lt;|im_end|&gt;" (ends an assistant turn), pad
/// "&lt;|endoftext|&gt;", no bos and no unk token (byte-level BPE has no unknown), model_max_length, chat_template.
/// </summary>
public static class HfTokenizerFiles
{
    public const string TokenizerFileName = "tokenizer.json";
    public const string ConfigFileName = "tokenizer_config.json";

    /// <summary>The special tokens of the Hub file that are not eos/pad, in id order (additional_special_tokens).</summary>
    static IEnumerable<AddedToken> AdditionalSpecial(Qwen2Tokenizer tokenizer) =>
        tokenizer.AddedTokens.Where(t => t.Special && t.Content != Qwen2Tokenizer.EndOfTextToken).OrderBy(t => t.Id);

    public static JsonObject TokenizerConfig(Qwen2Tokenizer tokenizer, int modelMaxLength)
    {
        // Both are required: they are the eos and pad of the Hub file, and generation stops at either.
        tokenizer.RequireToken(Qwen2Tokenizer.ImEndToken);
        tokenizer.RequireToken(Qwen2Tokenizer.EndOfTextToken);
        var decoder = new JsonObject();
        foreach (var t in tokenizer.AddedTokens.OrderBy(t => t.Id))
            decoder[t.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)] = new JsonObject
            {
                ["content"] = t.Content,
                ["lstrip"] = false,
                ["normalized"] = t.Normalized,
                ["rstrip"] = false,
                ["single_word"] = false,
                ["special"] = t.Special,
            };
        return new JsonObject
        {
            ["add_prefix_space"] = false,
            ["added_tokens_decoder"] = decoder,
            ["additional_special_tokens"] = new JsonArray(AdditionalSpecial(tokenizer).Select(t => (JsonNode)t.Content).ToArray()),
            ["bos_token"] = null,
            ["chat_template"] = QwenChatTemplate.Jinja,
            ["clean_up_tokenization_spaces"] = false,
            ["eos_token"] = Qwen2Tokenizer.ImEndToken,
            ["errors"] = "replace",
            ["extra_special_tokens"] = new JsonObject(),
            ["model_max_length"] = modelMaxLength,
            ["pad_token"] = Qwen2Tokenizer.EndOfTextToken,
            ["processor_class"] = HfProcessorFiles.ProcessorClass,
            ["split_special_tokens"] = false,
            ["tokenizer_class"] = "Qwen2Tokenizer",
            ["unk_token"] = null,
        };
    }

    /// <summary>
    /// The config with its special-token ids taken from <paramref name="tokenizer"/>: image/video pads and vision
    /// start/end must already agree (they change what the model computes: an error naming both files otherwise); bos = pad
    /// = &lt;|endoftext|&gt; and eos = &lt;|im_end|&gt; as in Qwen2.5-VL's own files.
    /// </summary>
    public static Qwen25VLConfig ConsistentIds(Qwen25VLConfig config, Qwen2Tokenizer tokenizer)
    {
        foreach (var (key, fromConfig, token) in new[]
                 {
                     ("image_token_id", config.ImageTokenId, Qwen2Tokenizer.ImagePadToken),
                     ("video_token_id", config.VideoTokenId, Qwen2Tokenizer.VideoPadToken),
                     ("vision_start_token_id", config.VisionStartTokenId, Qwen2Tokenizer.VisionStartToken),
                     ("vision_end_token_id", config.VisionEndTokenId, Qwen2Tokenizer.VisionEndToken),
                 })
        {
            int fromTokenizer = tokenizer.RequireToken(token);
            if (fromTokenizer != fromConfig)
                throw new ExportException($"{config.Source}: {key} is {fromConfig} but {tokenizer.SourcePath} gives {token} the id {fromTokenizer}");
        }
        if (tokenizer.VocabSize > config.VocabSize)
            throw new ExportException($"{config.Source}: vocab_size {config.VocabSize} is smaller than the {tokenizer.VocabSize} tokens of {tokenizer.SourcePath}");
        int endOfText = tokenizer.EndOfText;
        return (config with { BosTokenId = endOfText, EosTokenId = tokenizer.ImEnd, PadTokenId = endOfText }).Validate();
    }

    public static void Write(string dir, string tokenizerJsonPath, Qwen2Tokenizer tokenizer, int modelMaxLength)
    {
        File.Copy(tokenizerJsonPath, Path.Combine(dir, TokenizerFileName));
        File.WriteAllText(Path.Combine(dir, ConfigFileName),
            TokenizerConfig(tokenizer, modelMaxLength).ToJsonString(HfModelConfig.Json) + "\n");
    }
}
