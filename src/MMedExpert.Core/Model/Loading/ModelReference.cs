using MMedExpert.Core.Lora;

namespace MMedExpert.Core.Model.Loading;

/// <summary>
/// What a command names as "the model": a base checkpoint in the Hugging Face layout (config.json + safetensors; a
/// merged output written as a checkpoint is one too) and, optionally, one PEFT adapter folder applied on it.
/// </summary>
public sealed record ModelReference(string BaseDir, string? AdapterDir = null)
{
    public const string CheckpointConfigFile = "config.json";

    /// <summary>
    /// Resolves <paramref name="reference"/>, tried in this order: a folder (as given, then relative to
    /// <paramref name="runDir"/>, then as a run's stage name: <c>experts/&lt;name&gt;</c> or <c>merged/&lt;name&gt;</c>,
    /// see docs/run-layout.md). A checkpoint folder is the model itself; a PEFT adapter folder (adapter_config.json)
    /// is applied on <paramref name="baseDir"/>, or, when none is given, on the folder its
    /// <c>base_model_name_or_path</c> names (what PEFT's <c>AutoPeftModel</c> does).
    /// </summary>
    public static ModelReference Resolve(string reference, string? baseDir = null, string? runDir = null)
    {
        var tried = new List<string> { Path.GetFullPath(reference) };
        if (runDir is not null)
            foreach (var under in new[] { "", "experts", "merged" })
                tried.Add(Path.GetFullPath(Path.Combine(runDir, under, reference)));
        string dir = tried.FirstOrDefault(Directory.Exists)
                     ?? throw new ModelWeightsException($"{reference}: model folder not found (tried {string.Join(", ", tried.Distinct())})");

        if (File.Exists(Path.Combine(dir, PeftAdapterConfig.FileName)))
            return new ModelReference(baseDir is null ? BaseOfAdapter(dir) : Path.GetFullPath(baseDir), dir);
        if (File.Exists(Path.Combine(dir, CheckpointConfigFile)))
        {
            if (baseDir is not null)
                throw new ModelWeightsException($"{dir}: a checkpoint folder is a whole model; a base ({baseDir}) applies only to an adapter folder");
            return new ModelReference(dir);
        }
        throw new ModelWeightsException($"{dir}: neither a checkpoint ({CheckpointConfigFile}) nor a PEFT adapter ({PeftAdapterConfig.FileName}) folder");
    }

    static string BaseOfAdapter(string adapterDir)
    {
        string configPath = Path.Combine(adapterDir, PeftAdapterConfig.FileName);
        string? named = PeftAdapterConfig.Read(configPath).Config.BaseModelNameOrPath;
        if (named is null)
            throw new ModelWeightsException($"{configPath}: key 'base_model_name_or_path' is empty; name the base model folder");
        // A relative base is relative to the adapter (how mmx writes run folders that can be moved whole).
        string dir = Path.IsPathRooted(named) ? named : Path.GetFullPath(Path.Combine(adapterDir, named));
        if (!File.Exists(Path.Combine(dir, CheckpointConfigFile)))
            throw new ModelWeightsException($"{configPath}: key 'base_model_name_or_path' is '{named}', which is not a checkpoint folder here; name the base model folder");
        return dir;
    }
}
