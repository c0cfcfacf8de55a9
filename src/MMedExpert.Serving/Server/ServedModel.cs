using MMedExpert.Core.Lora;
using MMedExpert.Core.Model;
using MMedExpert.Core.Model.Loading;
using MMedExpert.Core.Tokenization;
using MMedExpert.Core.Training;
using MMedExpert.Core.Vision;
using static TorchSharp.torch;

namespace MMedExpert.Serving.Server;

/// <summary>
/// What the server serves: the base checkpoint loaded through the one loading path (<see cref="ModelLoader"/>), its
/// tokenizer and image processor (the checkpoint's preprocessor_config.json), the chat format, and a
/// <see cref="LoraAdapters"/> set that load_lora_adapter adds to. The model and the adapters belong to the engine thread.
/// </summary>
public sealed class ServedModel : IDisposable
{
    public Qwen25VLForConditionalGeneration Model { get; }
    public LoraAdapters Lora { get; }
    public Qwen2Tokenizer Tokenizer { get; }
    public ImageProcessor Images { get; }
    public Qwen25VLChat Chat { get; }
    public IReadOnlyList<int> StopTokenIds { get; }
    public IReadOnlyList<int> SuppressTokenIds { get; }
    readonly LoadedModel loaded;

    ServedModel(LoadedModel loaded, Qwen2Tokenizer tokenizer, ImageProcessor images)
    {
        this.loaded = loaded;
        Model = loaded.Model;
        Lora = new LoraAdapters(Model);
        Tokenizer = tokenizer;
        Images = images;
        // The in-process path's chat format, stops and suppressed placeholders (VisionChatEncoder), so a request built
        // from the same messages gives the same prompt ids and the same greedy tokens.
        var encoder = new VisionChatEncoder(tokenizer, images);
        Chat = encoder.Chat;
        StopTokenIds = encoder.StopTokenIds;
        SuppressTokenIds = encoder.SuppressTokenIds;
    }

    public static ServedModel Load(string dir, ScalarType dtype)
    {
        var reference = ModelReference.Resolve(dir);
        if (reference.AdapterDir is not null)
            throw new ServeException($"--model: '{dir}' is an adapter folder; give the base checkpoint as --model and the adapter as --adapter NAME=DIR");
        var config = Qwen25VLConfig.Load(reference.BaseDir);
        string tokenizerPath = Path.Combine(reference.BaseDir, "tokenizer.json");
        if (!File.Exists(tokenizerPath)) throw new ModelConfigException($"{tokenizerPath}: tokenizer.json not found in the model folder");
        var tokenizer = Qwen2Tokenizer.FromFile(tokenizerPath);
        foreach (var (name, fromTokenizer, fromConfig) in new[]
                 { ("image_token_id", tokenizer.ImagePad, config.ImageTokenId), ("vision_start_token_id", tokenizer.VisionStart, config.VisionStartTokenId) })
            if (fromTokenizer != fromConfig)
                throw new ModelConfigException($"{config.Source}: {name} is {fromConfig} but {tokenizerPath} gives {fromTokenizer}");
        string processorPath = Path.Combine(reference.BaseDir, "preprocessor_config.json");
        var images = File.Exists(processorPath) ? ImageProcessor.Load(processorPath) : new ImageProcessor();
        var loaded = ModelLoader.Load(reference, new ModelLoadOptions { DType = dtype });
        try { return new ServedModel(loaded, tokenizer, images); }
        catch { loaded.Dispose(); throw; }
    }

    public void Dispose()
    {
        Lora.Dispose();
        loaded.Dispose();
    }
}
