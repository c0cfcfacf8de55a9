using MMedExpert.Core.Lora;

namespace MMedExpert.Core.Model.Loading;

/// <summary>A loaded model and, when its reference named one, its active LoRA adapter. Disposing frees both.</summary>
public sealed class LoadedModel(Qwen25VLForConditionalGeneration model, LoraAdapters? lora, ModelReference reference) : IDisposable
{
    public Qwen25VLForConditionalGeneration Model { get; } = model;
    /// <summary>The adapters of <see cref="Model"/> (null when no adapter was loaded).</summary>
    public LoraAdapters? Lora { get; } = lora;
    public ModelReference Reference { get; } = reference;

    public void Dispose()
    {
        // The adapters unhook themselves from the model's layers, so they go first.
        Lora?.Dispose();
        Model.Dispose();
    }
}
