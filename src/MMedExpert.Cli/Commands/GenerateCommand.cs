using System.CommandLine;
using System.Diagnostics;
using MMedExpert.Core.Model;
using MMedExpert.Core.Model.Generation;
using MMedExpert.Core.Model.Loading;
using MMedExpert.Core.Tokenization;
using MMedExpert.Core.Vision;
using static TorchSharp.torch;

namespace MMedExpert.Cli.Commands;

/// <summary>
/// `mmx generate --model DIR --image FILE --prompt TEXT`: answers one chat prompt about zero or more images with a
/// Qwen2.5-VL checkpoint in Hugging Face layout (config.json, safetensors, tokenizer.json, preprocessor_config.json),
/// optionally with a PEFT adapter (--adapter, or --model naming the adapter folder, whose base_model_name_or_path is the base).
/// </summary>
public static class GenerateCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "Checkpoint folder (config.json, *.safetensors, tokenizer.json, preprocessor_config.json), or a PEFT adapter folder", Required = true };
        var adapter = new Option<string?>("--adapter") { Description = "PEFT adapter folder to apply on --model" };
        var images = new Option<string[]>("--image") { Description = "Image file (PNG/JPEG); repeat for several images, placed before the prompt", AllowMultipleArgumentsPerToken = false };
        var prompt = new Option<string>("--prompt") { Description = "The user's message", Required = true };
        var system = new Option<string?>("--system") { Description = $"System prompt (default: \"{Qwen25VLChat.DefaultSystemPrompt}\")" };
        var maxNew = new Option<int>("--max-new-tokens") { Description = "Most tokens to generate", DefaultValueFactory = _ => 256 };
        var temperature = new Option<double>("--temperature") { Description = "0 = greedy; otherwise sample at this temperature", DefaultValueFactory = _ => 0.0 };
        var topP = new Option<double>("--top-p") { Description = "Nucleus sampling threshold (1 = off)", DefaultValueFactory = _ => 1.0 };
        var topK = new Option<int>("--top-k") { Description = "Sample among the k most likely tokens (0 = off)", DefaultValueFactory = _ => 0 };
        var seed = new Option<long>("--seed") { Description = "Seed of the sampler", DefaultValueFactory = _ => 0L };
        var dtypeName = new Option<string>("--dtype") { Description = "fp32, bf16, or auto (bf16 when config.json says torch_dtype bfloat16)", DefaultValueFactory = _ => "auto" };
        var json = new Option<bool>("--json") { Description = "Print one JSON object (text, token ids, log-probabilities, timing)" };
        var cmd = new Command("generate", "Answer a prompt about images with a Qwen2.5-VL checkpoint (greedy or sampled)");
        foreach (var o in new Option[] { model, adapter, images, prompt, system, maxNew, temperature, topP, topK, seed, dtypeName, json }) cmd.Options.Add(o);
        cmd.SetAction(parse =>
        {
            CommandKit.ConfigureTorch(parse);
            var reference = parse.GetValue(adapter) is { } adapterDir
                ? ModelReference.Resolve(adapterDir, baseDir: parse.GetValue(model)!)
                : ModelReference.Resolve(parse.GetValue(model)!);
            string dir = reference.BaseDir;
            var config = Qwen25VLConfig.Load(dir);
            var chatEncoder = ModelFolder.ChatEncoder(dir);
            var tokenizer = chatEncoder.Tokenizer;
            var processor = chatEncoder.Images;

            var dtype = parse.GetValue(dtypeName) switch
            {
                "fp32" or "float32" => ScalarType.Float32,
                "bf16" or "bfloat16" => ScalarType.BFloat16,
                "auto" => config.OriginalJson?["torch_dtype"]?.ToString() == "bfloat16" ? ScalarType.BFloat16 : ScalarType.Float32,
                var other => throw new ModelConfigException($"--dtype: '{other}' is not fp32, bf16 or auto"),
            };
            var watch = Stopwatch.StartNew();
            using var loaded = ModelLoader.Load(reference, new ModelLoadOptions { DType = dtype });
            var vlm = loaded.Model;
            double loadSeconds = watch.Elapsed.TotalSeconds;

            string[] imagePaths = parse.GetValue(images) ?? Array.Empty<string>();
            using var processed = imagePaths.Length > 0 ? processor.Process(imagePaths) : null;
            var parts = new List<ChatPart>();
            if (processed is not null)
                parts.AddRange(processed.GridThw.Select(g => (ChatPart)new ImagePart((int)g[0], (int)g[1], (int)g[2], config.Vision.SpatialMergeSize)));
            parts.Add(new TextPart(parse.GetValue(prompt)!));
            var messages = new List<ChatMessage>();
            if (parse.GetValue(system) is { } s) messages.Add(ChatMessage.System(s));
            messages.Add(ChatMessage.User(parts.ToArray()));
            var encoding = new Qwen25VLChat(tokenizer).Encode(messages, addGenerationPrompt: true);

            using var grid = processed?.GridThwTensor();
            var batch = new PromptBatch(new[] { (IReadOnlyList<int>)encoding.Ids }, processed?.PixelValues, grid);
            var options = new GenerationOptions
            {
                MaxNewTokens = parse.GetValue(maxNew),
                Temperature = parse.GetValue(temperature),
                TopP = parse.GetValue(topP),
                TopK = parse.GetValue(topK),
                Seed = parse.GetValue(seed),
                StopTokenIds = new[] { tokenizer.ImEnd, tokenizer.EndOfText },
            }.Validate();
            watch.Restart();
            var result = new Qwen25VLGenerator(vlm, ids => tokenizer.Decode(ids, skipSpecial: true)).Generate(batch, options)[0];
            double generateSeconds = watch.Elapsed.TotalSeconds;

            if (parse.GetValue(json))
                CommandKit.WriteJson(new
                {
                    text = result.Text,
                    token_ids = result.TokenIds,
                    log_probs = result.LogProbs,
                    finish_reason = result.Finish.ToString().ToLowerInvariant(),
                    prompt_tokens = encoding.Ids.Length,
                    images = imagePaths.Length,
                    dtype = dtype == ScalarType.BFloat16 ? "bf16" : "fp32",
                    load_seconds = Math.Round(loadSeconds, 3),
                    generate_seconds = Math.Round(generateSeconds, 3),
                    tokens_per_second = Math.Round(result.TokenIds.Count / Math.Max(generateSeconds, 1e-9), 3),
                });
            else Console.WriteLine(result.Text);
            return 0;
        });
        return cmd;
    }
}
