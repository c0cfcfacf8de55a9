using System.CommandLine;
using System.Diagnostics;
using MMedExpert.Core.Model;
using MMedExpert.Core.Model.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace MMedExpert.Cli.Commands.Bench;

/// <summary>
/// `mmx bench model`: the language model's speed on this machine with random weights, each figure next to the bound it is
/// measured against in the same run: prefill FLOP/s against the matmul FLOP/s of the same dtype (MFU), cached decode
/// against recomputation and against the memory-bandwidth bound, and a training step (forward + backward) at `small`.
/// </summary>
public static class ModelBench
{
    public static Command Create()
    {
        var preset = new Option<string>("--preset") { Description = $"Model shape ({string.Join(", ", Qwen25VLConfig.PresetNames)})", DefaultValueFactory = _ => "qwen2.5-0.5b-shape" };
        var dtypeName = new Option<string>("--dtype") { Description = "fp32 or bf16", DefaultValueFactory = _ => "bf16" };
        var promptTokens = new Option<int>("--prompt-tokens") { Description = "Prefill length (and the context of the decode figures)", DefaultValueFactory = _ => 256 };
        var decodeTokens = new Option<int>("--decode-tokens") { Description = "Tokens decoded with the KV cache", DefaultValueFactory = _ => 32 };
        var uncachedTokens = new Option<int>("--uncached-tokens") { Description = "Tokens decoded by recomputing the whole sequence", DefaultValueFactory = _ => 4 };
        var trainPreset = new Option<string>("--train-preset") { Description = "Shape of the training-step figure", DefaultValueFactory = _ => "small" };
        var trainBatch = new Option<int>("--train-batch") { Description = "Training step batch size", DefaultValueFactory = _ => 4 };
        var trainSeq = new Option<int>("--train-seq") { Description = "Training step sequence length", DefaultValueFactory = _ => 128 };
        var repeats = new Option<int>("--repeats") { Description = "Measurements per figure after one warm-up (best is reported)", DefaultValueFactory = _ => 2 };
        var json = new Option<bool>("--json") { Description = "Print one JSON object" };
        var cmd = new Command("model", "Prefill tokens/s and MFU, decode tokens/s with/without KV cache against the bandwidth bound, training step tokens/s");
        foreach (var o in new Option[] { preset, dtypeName, promptTokens, decodeTokens, uncachedTokens, trainPreset, trainBatch, trainSeq, repeats, json }) cmd.Options.Add(o);
        cmd.SetAction(parse =>
        {
            CommandKit.ConfigureTorch(parse);
            var dtype = parse.GetValue(dtypeName) switch
            {
                "bf16" or "bfloat16" => ScalarType.BFloat16,
                "fp32" or "float32" => ScalarType.Float32,
                var other => throw new ModelConfigException($"--dtype: '{other}' is not fp32 or bf16"),
            };
            int n = Math.Max(1, parse.GetValue(repeats));
            var config = Qwen25VLConfig.Preset(parse.GetValue(preset)!);
            int prompt = parse.GetValue(promptTokens), decode = parse.GetValue(decodeTokens), uncached = parse.GetValue(uncachedTokens);

            var matmul = MatmulFlops(config, prompt, dtype, n);
            var copyGbps = CopyBandwidth(n);
            object lm;
            using (var model = Qwen25VL.CreateRandom(config, seed: 0, dtype))
            {
                double prefillSeconds = Best(n, () => Prefill(model, prompt));
                double prefillFlops = PrefillFlops(config, prompt);
                double cachedSeconds = Best(n, () => DecodeCached(model, prompt, decode));
                double uncachedSeconds = Best(1, () => DecodeUncached(model, prompt, uncached));
                double cachedTps = decode / cachedSeconds, uncachedTps = uncached / uncachedSeconds;
                double weightBytes = DecodeWeightBytes(model);
                double boundTps = copyGbps * 1e9 / weightBytes;
                double modelFlops = prefillFlops / prefillSeconds;
                lm = new
                {
                    prefill_tokens = prompt,
                    prefill_tokens_per_s = Round(prompt / prefillSeconds),
                    prefill_model_flops_per_token = Round(prefillFlops / prompt),
                    prefill_model_gflops_per_s = Round(modelFlops / 1e9),
                    matmul_gflops_per_s = Round(matmul.Best / 1e9),
                    matmul_square_gflops_per_s = Round(matmul.Square / 1e9),
                    matmul_model_shaped_gflops_per_s = Round(matmul.ModelShaped / 1e9),
                    prefill_mfu = Round(modelFlops / matmul.Best),
                    goal_prefill_mfu = 0.5,
                    decode_context_tokens = prompt,
                    decode_cached_tokens_per_s = Round(cachedTps),
                    decode_uncached_tokens_per_s = Round(uncachedTps),
                    decode_cache_speedup = Round(cachedTps / uncachedTps),
                    decode_weight_bytes_per_token = (long)weightBytes,
                    copy_gb_per_s = Round(copyGbps),
                    decode_bandwidth_bound_tokens_per_s = Round(boundTps),
                    decode_fraction_of_bound = Round(cachedTps / boundTps),
                    goal_decode_fraction_of_bound = 0.6,
                };
            }
            var trainConfig = Qwen25VLConfig.Preset(parse.GetValue(trainPreset)!);
            int tb = parse.GetValue(trainBatch), ts = parse.GetValue(trainSeq);
            double trainSeconds;
            using (var small = Qwen25VL.CreateRandom(trainConfig, seed: 0, dtype))
                trainSeconds = Best(n, () => TrainStep(small, tb, ts));

            var result = new
            {
                preset = parse.GetValue(preset),
                dtype = dtype == ScalarType.BFloat16 ? "bf16" : "fp32",
                threads = get_num_threads(),
                // Shared machines: the load while measuring and the OpenMP wait policy (spinning threads suffer most under load).
                load_average = File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Trim() : "n/a",
                omp_wait_policy = Environment.GetEnvironmentVariable("OMP_WAIT_POLICY") ?? "(default)",
                parameters = ParameterCount(config),
                language_model = lm,
                train_preset = parse.GetValue(trainPreset),
                train_tokens_per_step = tb * ts,
                train_step_tokens_per_s = Round(tb * ts / trainSeconds),
                train_step_seconds = Round(trainSeconds),
                repeats = n,
                note = "random weights, batch 1, text only. Model FLOPs per prefill = 2·(decoder linear weights)·T + 2·T²·(heads·head_dim)·layers " +
                       "(causal half of QKᵀ and AV) + 2·hidden·vocab (last-token logits). matmul = best of a square 2048 GEMM and the " +
                       "model's MLP up-projection at T rows, same dtype, via torch linear. Decode bound = copy GB/s (read+write bytes of a " +
                       "512 MiB copy) ÷ bytes of the weights read per token (all but the embedding table, plus the lm_head/tied matrix). " +
                       "Uncached = full recomputation per new token at the same context. Training step = forward + cross-entropy + backward.",
            };
            if (parse.GetValue(json)) CommandKit.WriteJson(result);
            else
            {
                // The same figures as the JSON, one per line.
                Console.WriteLine($"{result.preset} {result.dtype}, {result.threads} threads, {result.parameters:N0} parameters");
                foreach (var prop in lm.GetType().GetProperties()) Console.WriteLine($"  {prop.Name,-40} {prop.GetValue(lm)}");
                Console.WriteLine($"  {"train_step_tokens_per_s (" + result.train_preset + ")",-40} {result.train_step_tokens_per_s}");
            }
            return 0;
        });
        return cmd;
    }

    static double Round(double x) => Math.Round(x, 3);

    static double Best(int repeats, Func<double> run)
    {
        run(); // warm-up: first-call allocations and kernel selection
        return Enumerable.Range(0, repeats).Select(_ => run()).Min();
    }

    static Tensor RandomTokens(long batch, long length, int vocab) => randint(0, Math.Min(vocab, 150000), new[] { batch, length }, dtype: ScalarType.Int64);

    static double Prefill(Qwen25VLForConditionalGeneration model, int length)
    {
        using var inference = inference_mode();
        using var scope = NewDisposeScope();
        var ids = RandomTokens(1, length, model.Config.VocabSize);
        var sw = Stopwatch.StartNew();
        var (hidden, _) = model.Prefill(ids);
        var logits = model.Logits(hidden.narrow(1, length - 1, 1));
        _ = logits.argmax(-1).item<long>();
        return sw.Elapsed.TotalSeconds;
    }

    /// <summary>Seconds for <paramref name="steps"/> cached greedy decoding steps after a prefill of <paramref name="context"/> tokens.</summary>
    static double DecodeCached(Qwen25VLForConditionalGeneration model, int context, int steps)
    {
        using var inference = inference_mode();
        using var scope = NewDisposeScope();
        var ids = RandomTokens(1, context, model.Config.VocabSize);
        using var cache = new KvCache(model.Config, 1, context + steps, model.DType);
        var (hidden, deltas) = model.Prefill(ids, cache: cache);
        var next = model.Logits(hidden.narrow(1, context - 1, 1)).argmax(-1);
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < steps; i++)
        {
            using var step = NewDisposeScope();
            var h = model.DecodeStep(next, deltas, cache);
            var chosen = model.Logits(h).argmax(-1);
            _ = chosen.item<long>();
            next.Dispose();
            next = chosen.MoveToOuterDisposeScope();
        }
        return sw.Elapsed.TotalSeconds;
    }

    /// <summary>Seconds for <paramref name="steps"/> greedy tokens, each recomputing the whole sequence (no cache).</summary>
    static double DecodeUncached(Qwen25VLForConditionalGeneration model, int context, int steps)
    {
        using var inference = inference_mode();
        using var scope = NewDisposeScope();
        var ids = RandomTokens(1, context, model.Config.VocabSize);
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < steps; i++)
        {
            using var step = NewDisposeScope();
            var (hidden, _) = model.Prefill(ids);
            var chosen = model.Logits(hidden.narrow(1, hidden.shape[1] - 1, 1)).argmax(-1);
            var longer = cat(new[] { ids, chosen.view(1, 1) }, 1);
            ids = longer.MoveToOuterDisposeScope();
        }
        return sw.Elapsed.TotalSeconds;
    }

    static double TrainStep(Qwen25VLForConditionalGeneration model, int batch, int length)
    {
        model.train();
        using var scope = NewDisposeScope();
        var ids = RandomTokens(batch, length + 1, model.Config.VocabSize);
        var input = ids.narrow(1, 0, length);
        var target = ids.narrow(1, 1, length);
        model.zero_grad();
        var sw = Stopwatch.StartNew();
        var logits = model.forward(input);
        var loss = nn.functional.cross_entropy(logits.view(-1, logits.shape[^1]).to_type(ScalarType.Float32), target.reshape(-1));
        loss.backward();
        double seconds = sw.Elapsed.TotalSeconds;
        model.eval();
        return seconds;
    }

    static long ParameterCount(Qwen25VLConfig c)
    {
        long h = c.HiddenSize, kv = (long)c.NumKeyValueHeads * c.HeadDim;
        long layer = h * h + h + 2 * (h * kv + kv) + h * h + 3 * h * c.IntermediateSize + 2 * h;
        return c.NumHiddenLayers * layer + c.VocabSize * h * (c.TieWordEmbeddings ? 1 : 2) + h;
    }

    static double PrefillFlops(Qwen25VLConfig c, long tokens)
    {
        double h = c.HiddenSize, kv = (double)c.NumKeyValueHeads * c.HeadDim;
        double linearWeights = c.NumHiddenLayers * (h * h + 2 * h * kv + h * h + 3 * h * c.IntermediateSize);
        double attention = c.NumHiddenLayers * 2.0 * tokens * tokens * h;
        return 2 * linearWeights * tokens + attention + 2 * h * c.VocabSize;
    }

    /// <summary>Bytes of weights one decode step reads: every parameter except the embedding table (one row is read), plus the output matrix.</summary>
    static double DecodeWeightBytes(Qwen25VLForConditionalGeneration model)
    {
        long bytes = 0;
        foreach (var (name, p) in model.named_parameters())
        {
            if (name.StartsWith("visual.", StringComparison.Ordinal) || name == "model.embed_tokens.weight") continue;
            bytes += p.numel() * p.ElementSize;
        }
        if (model.lm_head is null) bytes += model.model.embed_tokens.weight!.numel() * model.model.embed_tokens.weight!.ElementSize;
        return bytes;
    }

    /// <summary>FLOP/s of torch linear in <paramref name="dtype"/>: a square 2048 GEMM and the model's MLP up-projection at <paramref name="tokens"/> rows.</summary>
    internal static (double Best, double Square, double ModelShaped) MatmulFlops(Qwen25VLConfig c, int tokens, ScalarType dtype, int repeats, Device? device = null)
    {
        using var inference = inference_mode();
        double Measure(long m, long k, long nOut)
        {
            using var scope = NewDisposeScope();
            var a = randn(new[] { m, k }, dtype: dtype, device: device);
            var w = randn(new[] { nOut, k }, dtype: dtype, device: device);
            double seconds = Best(repeats, () =>
            {
                using var inner = NewDisposeScope();
                var sw = Stopwatch.StartNew();
                var y = nn.functional.linear(a, w);
                _ = y[0, 0].to_type(ScalarType.Float32).item<float>();
                return sw.Elapsed.TotalSeconds;
            });
            return 2.0 * m * k * nOut / seconds;
        }
        double square = Measure(2048, 2048, 2048);
        double shaped = Measure(tokens, c.HiddenSize, c.IntermediateSize);
        return (Math.Max(square, shaped), square, shaped);
    }

    /// <summary>GB/s of a large tensor copy, counting the bytes read and the bytes written.</summary>
    static double CopyBandwidth(int repeats)
    {
        using var scope = NewDisposeScope();
        long count = 128L << 20; // 512 MiB of fp32
        var src = ones(count);
        var dst = empty(count);
        double seconds = Best(Math.Max(2, repeats), () =>
        {
            var sw = Stopwatch.StartNew();
            dst.copy_(src);
            return sw.Elapsed.TotalSeconds;
        });
        return 2.0 * count * 4 / seconds / 1e9;
    }
}
