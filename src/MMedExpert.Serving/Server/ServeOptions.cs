using static TorchSharp.torch;

namespace MMedExpert.Serving.Server;

/// <summary>How `mmx serve` (and <see cref="OpenAiServer.StartAsync"/>) serves a checkpoint.</summary>
public sealed record ServeOptions
{
    /// <summary>HF-layout checkpoint folder: config.json, safetensors, tokenizer.json, preprocessor_config.json.</summary>
    public required string ModelDir { get; init; }
    /// <summary>LoRA adapters loaded at start: served name → PEFT folder.</summary>
    public IReadOnlyDictionary<string, string> Adapters { get; init; } = new Dictionary<string, string>();
    public string Host { get; init; } = "127.0.0.1";
    /// <summary>0 = a free port (tests, benchmarks); <see cref="OpenAiServer.BaseAddress"/> names the one taken.</summary>
    public int Port { get; init; } = 8000;
    /// <summary>The base model's name in requests and /v1/models; default the model folder's name.</summary>
    public string? ServedModelName { get; init; }
    /// <summary>Sequences decoded together (a request with n = k takes k of them).</summary>
    public int MaxBatch { get; init; } = 16;
    /// <summary>Prompt + completion tokens per sequence.</summary>
    public int MaxModelLen { get; init; } = 4096;
    public ScalarType DType { get; init; } = ScalarType.Float32;
    /// <summary>
    /// Local image files (file:// URLs and paths in image_url) are read only inside this folder (vLLM's
    /// --allowed-local-media-path). Null: any local file while the server listens on loopback only, none otherwise, so a
    /// server open to the network never reads its own files for a client.
    /// </summary>
    public string? AllowedLocalMediaPath { get; init; }
    /// <summary>Largest request body accepted (images come inline as data URLs).</summary>
    public long MaxRequestBodyBytes { get; init; } = 32L << 20;

    /// <summary>The served name of the base model.</summary>
    public string BaseModelName => ServedModelName is { Length: > 0 } n ? n : new DirectoryInfo(Path.GetFullPath(ModelDir)).Name;

    /// <summary>The folder local image files must lie in ("/" = anywhere), or null when none may be read.</summary>
    public string? LocalMediaRoot =>
        AllowedLocalMediaPath is { Length: > 0 } p ? Path.GetFullPath(p)
        : Host is "127.0.0.1" or "::1" or "localhost" ? Path.GetPathRoot(Path.GetFullPath(ModelDir))
        : null;

    public ServeOptions Validate()
    {
        if (string.IsNullOrWhiteSpace(ModelDir)) throw new ServeException("--model: a checkpoint folder is required");
        if (!Directory.Exists(ModelDir)) throw new ServeException($"--model: folder '{ModelDir}' not found");
        if (MaxBatch < 1) throw new ServeException($"--max-batch must be ≥ 1 (got {MaxBatch})");
        if (MaxModelLen < 2) throw new ServeException($"--max-model-len must be ≥ 2 (got {MaxModelLen})");
        if (Port < 0 || Port > 65535) throw new ServeException($"--port must be in [0, 65535] (got {Port})");
        if (DType is not (ScalarType.Float32 or ScalarType.BFloat16)) throw new ServeException($"dtype {DType} is not fp32 or bf16");
        if (AllowedLocalMediaPath is { Length: > 0 } media && !Directory.Exists(media))
            throw new ServeException($"--allowed-local-media-path: folder '{media}' not found");
        foreach (var (name, dir) in Adapters)
        {
            if (string.IsNullOrWhiteSpace(name)) throw new ServeException($"--adapter: an empty name for '{dir}'");
            if (name == BaseModelName) throw new ServeException($"--adapter: '{name}' is the base model's served name");
        }
        return this;
    }
}
