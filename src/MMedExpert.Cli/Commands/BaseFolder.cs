using MMedExpert.Core;
using MMedExpert.Core.Model;
using MMedExpert.Core.Tokenization;
using MMedExpert.Core.Training;
using MMedExpert.Core.Vision;

namespace MMedExpert.Cli.Commands;

/// <summary>What the training commands read from a base model folder (HF layout) besides the weights.</summary>
public static class BaseFolder
{
    /// <summary>
    /// The chat encoder of the base: its tokenizer.json, and its preprocessor_config.json when present (Qwen2.5-VL's
    /// defaults otherwise). The tokenizer must fit the model's vocabulary and special ids (config.json).
    /// </summary>
    public static VisionChatEncoder Encoder(string baseDir)
    {
        if (!Directory.Exists(baseDir)) throw new MmxException($"{baseDir}: base model folder not found");
        string tokenizerPath = Path.Combine(baseDir, "tokenizer.json");
        if (!File.Exists(tokenizerPath)) throw new MmxException($"{tokenizerPath}: the base folder has no tokenizer.json");
        var tokenizer = Qwen2Tokenizer.FromFile(tokenizerPath);
        var config = Qwen25VLConfig.Load(baseDir);
        if (tokenizer.VocabSize > config.VocabSize)
            throw new MmxException($"{tokenizerPath}: {tokenizer.VocabSize} tokens do not fit the model's vocab_size {config.VocabSize} ({config.Source})");
        if (tokenizer.ImagePad != config.ImageTokenId || tokenizer.VisionStart != config.VisionStartTokenId)
            throw new MmxException($"{tokenizerPath}: <|image_pad|> = {tokenizer.ImagePad}, <|vision_start|> = {tokenizer.VisionStart} but {config.Source} has " +
                                   $"image_token_id {config.ImageTokenId}, vision_start_token_id {config.VisionStartTokenId}: tokenizer and model do not belong together");
        string preprocessor = Path.Combine(baseDir, "preprocessor_config.json");
        var images = File.Exists(preprocessor) ? ImageProcessor.Load(preprocessor) : new ImageProcessor();
        return new VisionChatEncoder(tokenizer, images);
    }
}
