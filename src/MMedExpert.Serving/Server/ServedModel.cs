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

    ServedModel(LoadedModel loaded, VisionChatEncoder encoder)
    {
        this.loaded = loaded;
        Model = loaded.Model;
        Lora = new LoraAdapters(Model);
        Tokenizer = encoder.Tokenizer;
        Images = encoder.Images;
        // The in-process path's chat format, stops and suppressed placeholders (VisionChatEncoder), so a request built
        // from the same messages gives the same prompt ids and the same greedy tokens.
        Chat = encoder.Chat;
        StopTokenIds = encoder.StopTokenIds;
        SuppressTokenIds = encoder.SuppressTokenIds;
    }

    public static ServedModel Load(string dir, ScalarType dtype)
    {
        var reference = ModelReference.Resolve(dir);
        if (reference.AdapterDir is not null)
            throw new ServeException($"--model: '{dir}' is an adapter folder; give the base checkpoint as --model and the adapter as --adapter NAME=DIR");
        var encoder = ModelFolder.ChatEncoder(reference.BaseDir);
        var loaded = ModelLoader.Load(reference, new ModelLoadOptions { DType = dtype });
        try { return new ServedModel(loaded, encoder); }
        catch { loaded.Dispose(); throw; }
    }

    public void Dispose()
    {
        Lora.Dispose();
        loaded.Dispose();
    }
}
