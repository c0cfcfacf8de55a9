using System.CommandLine;
using MMedExpert.Core.Model;
using MMedExpert.Serving.Server;
using static TorchSharp.torch;

namespace MMedExpert.Cli.Commands;

/// <summary>
/// `mmx serve --model DIR [--adapter NAME=DIR ...] --port P`: an OpenAI-compatible HTTP server (chat completions with
/// images, streaming, logprobs, LoRA adapters by model name) with continuous batching; runs until Ctrl+C. See docs/serving.md.
/// </summary>
public static class ServeCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "Checkpoint folder (config.json, *.safetensors, tokenizer.json, preprocessor_config.json)", Required = true };
        var adapters = new Option<string[]>("--adapter") { Description = "LoRA adapter served under a model name: NAME=DIR (PEFT folder); repeat for several", AllowMultipleArgumentsPerToken = false };
        var host = new Option<string>("--host") { Description = "Address to listen on", DefaultValueFactory = _ => "127.0.0.1" };
        var port = new Option<int>("--port") { Description = "Port to listen on (0 = a free one)", DefaultValueFactory = _ => 8000 };
        var servedName = new Option<string?>("--served-model-name") { Description = "The base model's name in requests (default: the model folder's name)" };
        var maxBatch = new Option<int>("--max-batch") { Description = "Sequences decoded together (a request with n = k takes k)", DefaultValueFactory = _ => 16 };
        var maxLen = new Option<int>("--max-model-len") { Description = "Prompt + completion tokens per sequence", DefaultValueFactory = _ => 4096 };
        var media = new Option<string?>("--allowed-local-media-path")
        {
            Description = "Read local image files (file:// URLs, paths) only inside this folder (default: any local file on a loopback host, none otherwise)",
        };
        var dtypeName = new Option<string>("--dtype") { Description = "fp32, bf16, or auto (bf16 when config.json says torch_dtype bfloat16)", DefaultValueFactory = _ => "fp32" };
        var cmd = new Command("serve", "Serve a checkpoint (and LoRA adapters) over an OpenAI-compatible HTTP API with continuous batching");
        foreach (var o in new Option[] { model, adapters, host, port, servedName, maxBatch, maxLen, media, dtypeName }) cmd.Options.Add(o);
        cmd.SetAction(parse =>
        {
            CommandKit.ConfigureTorch(parse);
            string dir = parse.GetValue(model)!;
            var options = new ServeOptions
            {
                ModelDir = dir,
                Adapters = ParseAdapters(parse.GetValue(adapters) ?? Array.Empty<string>()),
                Host = parse.GetValue(host)!,
                Port = parse.GetValue(port),
                ServedModelName = parse.GetValue(servedName),
                MaxBatch = parse.GetValue(maxBatch),
                MaxModelLen = parse.GetValue(maxLen),
                DType = ParseDType(parse.GetValue(dtypeName)!, dir),
                AllowedLocalMediaPath = parse.GetValue(media),
            };
            var server = OpenAiServer.StartAsync(options).GetAwaiter().GetResult();
            try
            {
                Console.WriteLine($"serving {options.BaseModelName}" +
                                  (options.Adapters.Count > 0 ? $" (+ adapters {string.Join(", ", options.Adapters.Keys)})" : "") +
                                  $" on {server.BaseAddress}v1 (max batch {options.MaxBatch}, max model len {options.MaxModelLen}); Ctrl+C stops");
                server.WaitForShutdownAsync().GetAwaiter().GetResult();
            }
            finally { server.StopAsync().GetAwaiter().GetResult(); }
            return 0;
        });
        return cmd;
    }

    static IReadOnlyDictionary<string, string> ParseAdapters(string[] values)
    {
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var v in values)
        {
            int eq = v.IndexOf('=');
            if (eq <= 0 || eq == v.Length - 1) throw new ServeException($"--adapter: '{v}' is not NAME=DIR");
            if (!map.TryAdd(v[..eq], v[(eq + 1)..])) throw new ServeException($"--adapter: name '{v[..eq]}' given twice");
        }
        return map;
    }

    /// <summary>fp32, bf16, or auto: bf16 when the checkpoint's config.json says torch_dtype bfloat16.</summary>
    public static ScalarType ParseDType(string name, string modelDir) => name switch
    {
        "fp32" or "float32" => ScalarType.Float32,
        "bf16" or "bfloat16" => ScalarType.BFloat16,
        "auto" => Qwen25VLConfig.Load(modelDir).OriginalJson?["torch_dtype"]?.ToString() == "bfloat16" ? ScalarType.BFloat16 : ScalarType.Float32,
        var other => throw new ServeException($"--dtype: '{other}' is not fp32, bf16 or auto"),
    };
}
