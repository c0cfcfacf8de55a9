using MMedExpert.Core.Tokenization;
using MMedExpert.Core.Training;
using MMedExpert.Core.Vision;

namespace MMedExpert.Core.Model.Loading;

/// <summary>What a checkpoint folder (HF layout) holds besides the weights, read the one way every command reads it.</summary>
public static class ModelFolder
{
    public const string TokenizerFile = "tokenizer.json";
    public const string PreprocessorFile = "preprocessor_config.json";

    /// <summary>
    /// The chat encoder of a checkpoint: its tokenizer.json, and its preprocessor_config.json when present (Qwen2.5-VL's
    /// defaults otherwise). The tokenizer must belong to the model: it fits config.json's vocab_size, and its
    /// &lt;|image_pad|&gt; and &lt;|vision_start|&gt; are the config's image_token_id and vision_start_token_id (a
    /// mismatch would place image features at the wrong tokens without any error).
    /// </summary>
    public static VisionChatEncoder ChatEncoder(string dir)
    {
        if (!Directory.Exists(dir)) throw new ModelConfigException($"{dir}: model folder not found");
        string tokenizerPath = Path.Combine(dir, TokenizerFile);
        if (!File.Exists(tokenizerPath)) throw new ModelConfigException($"{tokenizerPath}: the model folder has no {TokenizerFile}");
        var tokenizer = Qwen2Tokenizer.FromFile(tokenizerPath);
        var config = Qwen25VLConfig.Load(dir);
        if (tokenizer.VocabSize > config.VocabSize)
            throw new ModelConfigException($"{tokenizerPath}: {tokenizer.VocabSize} tokens do not fit the model's vocab_size {config.VocabSize} ({config.Source})");
        if (tokenizer.ImagePad != config.ImageTokenId || tokenizer.VisionStart != config.VisionStartTokenId)
            throw new ModelConfigException($"{tokenizerPath}: <|image_pad|> = {tokenizer.ImagePad}, <|vision_start|> = {tokenizer.VisionStart} but {config.Source} has " +
                                           $"image_token_id {config.ImageTokenId}, vision_start_token_id {config.VisionStartTokenId}: tokenizer and model do not belong together");
        string preprocessor = Path.Combine(dir, PreprocessorFile);
        var images = File.Exists(preprocessor) ? ImageProcessor.Load(preprocessor) : new ImageProcessor();
        return new VisionChatEncoder(tokenizer, images);
    }
}
