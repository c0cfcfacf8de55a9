using MMedExpert.Core.Lora;

namespace MMedExpert.Core.Model.Loading;

/// <summary>
/// The one way every command and pipeline stage loads a model: the base checkpoint in the requested dtype, the
/// mixed-precision compute dtype set on its linear layers, then the PEFT adapter (if any) attached and made active.
/// </summary>
public static class ModelLoader
{
    /// <summary>Resolves <paramref name="reference"/> (see <see cref="ModelReference.Resolve"/>) and loads it.</summary>
    public static LoadedModel Load(string reference, ModelLoadOptions? options = null, string? baseDir = null, string? runDir = null) =>
        Load(ModelReference.Resolve(reference, baseDir, runDir), options);

    public static LoadedModel Load(ModelReference reference, ModelLoadOptions? options = null)
    {
        options ??= new ModelLoadOptions();
        var model = Qwen25VL.Load(reference.BaseDir, options.DType);
        LoraAdapters? lora = null;
        try
        {
            MixedPrecision.Apply(model, options.Compute);
            if (reference.AdapterDir is not null)
            {
                lora = new LoraAdapters(model);
                lora.Load(reference.AdapterDir, options.AdapterName);
                lora.SetActive(options.AdapterName);
            }
            return new LoadedModel(model, lora, reference);
        }
        catch
        {
            lora?.Dispose();
            model.Dispose();
            throw;
        }
    }
}
