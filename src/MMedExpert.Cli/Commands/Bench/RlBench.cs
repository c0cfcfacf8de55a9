using System.CommandLine;
using System.Diagnostics;
using System.Text.Json.Nodes;
using MMedExpert.Algebra.Advantages;
using GrpoOptions = MMedExpert.Core.Training.Grpo.GrpoOptions;
using MMedExpert.Algebra.Rewards;
using MMedExpert.Core;
using MMedExpert.Core.Lora;
using MMedExpert.Core.Model;
using MMedExpert.Core.Model.Generation;
using MMedExpert.Core.Training;
using MMedExpert.Core.Training.Grpo;
using MMedExpert.Core.Vision;
using static TorchSharp.torch;

namespace MMedExpert.Cli.Commands.Bench;

/// <summary>
/// `mmx bench rl`: where the time of a GRPO/GBA step goes. A random model of the preset over a 2,000-token trained
/// tokenizer, a LoRA adapter, synthetic multiple-choice prompts with one 56×56 image each, and the real
/// <see cref="GrpoTrainer.Step"/> (rollouts, guideline rewards, GBA advantages, reference pass, update): rollout tokens/s
/// and the share of step time spent generating vs learning, from the step's own generation_s / learning_s.
/// </summary>
public static class RlBench
{
    public static Command Create()
    {
        var preset = new Option<string>("--preset") { Description = "Model preset (tiny, small, ...)", DefaultValueFactory = _ => "small" };
        var steps = new Option<int>("--steps") { Description = "Measured RL steps", DefaultValueFactory = _ => 3 };
        var warmup = new Option<int>("--warmup") { Description = "Unmeasured steps first", DefaultValueFactory = _ => 1 };
        var prompts = new Option<int>("--prompts-per-step") { Description = "Prompts per step", DefaultValueFactory = _ => 4 };
        var group = new Option<int>("--group-size") { Description = "Completions per prompt", DefaultValueFactory = _ => 8 };
        var maxNew = new Option<int>("--max-new-tokens") { Description = "Completion length limit", DefaultValueFactory = _ => 64 };
        var beta = new Option<double>("--beta") { Description = "KL weight (> 0 adds the reference pass to learning)", DefaultValueFactory = _ => 0.02 };
        var rank = new Option<int>("--rank") { Description = "LoRA rank", DefaultValueFactory = _ => 8 };
        var seed = new Option<long>("--seed") { DefaultValueFactory = _ => 1 };
        var json = new Option<bool>("--json") { Description = "Print one JSON object" };
        var cmd = new Command("rl", "RL step: rollout tokens/s and the share of step time in generation vs learning");
        foreach (var o in new Option[] { preset, steps, warmup, prompts, group, maxNew, beta, rank, seed, json }) cmd.Options.Add(o);
        cmd.SetAction(parse =>
        {
            CommandKit.ConfigureTorch(parse);
            string name = parse.GetValue(preset)!;
            if (!Qwen25VLConfig.PresetNames.Contains(name)) throw new MmxException($"--preset: unknown preset '{name}' (known: {string.Join(", ", Qwen25VLConfig.PresetNames)})");
            var result = Measure(name, Math.Max(1, parse.GetValue(steps)), Math.Max(0, parse.GetValue(warmup)), Math.Max(1, parse.GetValue(prompts)),
                Math.Max(1, parse.GetValue(group)), Math.Max(1, parse.GetValue(maxNew)), parse.GetValue(beta), Math.Max(1, parse.GetValue(rank)), parse.GetValue(seed));
            if (parse.GetValue(json)) CommandKit.WriteJson(result);
            else
            {
                Console.WriteLine($"{name}: {result["model"]}");
                Console.WriteLine($"  {result["sequences_per_step"]} sequences/step, mean completion {result["mean_completion_tokens"]} tokens, step {result["seconds_per_step"]} s");
                Console.WriteLine($"  rollout {result["rollout_tokens_per_s"]} tokens/s; generation {result["generation_share"]}, learning {result["learning_share"]}, other {result["other_share"]} of step time");
            }
            return 0;
        });
        return cmd;
    }

    static JsonObject Measure(string preset, int steps, int warmup, int promptsPerStep, int groupSize, int maxNew, double beta, int rank, long seed)
    {
        var tokenizer = BenchVlm.Tokenizer();
        using var model = BenchVlm.Model(preset, tokenizer, seed);
        using var adapters = new LoraAdapters(model);
        adapters.Add("bench", new LoraConfig { R = rank, Alpha = 2 * rank, Dropout = 0, Init = LoraInit.Gaussian }, seed);
        var dir = Directory.CreateTempSubdirectory("mmx-bench-rl-").FullName;
        try
        {
            var words = BenchVlm.Words(300, seed);
            var rng = new Random((int)seed);
            var samples = Enumerable.Range(0, promptsPerStep * 2).Select(i =>
            {
                string image = BenchVlm.WritePng(Path.Combine(dir, $"p{i}.png"), i);
                var options = new Dictionary<string, string> { ["A"] = words[rng.Next(words.Length)], ["B"] = words[rng.Next(words.Length)], ["C"] = words[rng.Next(words.Length)] };
                string text = $"{BenchVlm.Sentence(rng, words, 40)}\n\nOptions:\n" + string.Join("\n", options.Select(kv => $"{kv.Key}. {kv.Value}")) +
                              "\n\nThink through the case step by step inside <think></think>, then give only the letter of the correct option inside <answer></answer>.";
                var annotations = Annotations.Create("B", options, new[] { words[0] }, null, null, "adult_medicine", "diagnosis", "differential");
                return new RlSample(new VisionChatSample(new[] { image }, text), annotations);
            }).ToList();
            var encoder = new VisionChatEncoder(tokenizer, new ImageProcessor());
            var generator = new Qwen25VLGenerator(model, ids => tokenizer.Decode(ids));
            var options = new GrpoOptions
            {
                Steps = warmup + steps, PromptsPerStep = promptsPerStep, GroupSize = groupSize, MaxNewTokens = maxNew, Temperature = 1.0,
                LearningRate = 1e-4, Seed = seed, Loss = new GrpoLossOptions { Beta = beta },
            };
            using var trainer = new GrpoTrainer(generator, adapters, "bench", encoder, DefaultSpec.load(), EstimatorModule.parse("gba"), samples, options);
            double stepSeconds = 0, generation = 0, learning = 0, tokens = 0;
            for (int s = 1; s <= warmup + steps; s++)
            {
                var clock = Stopwatch.StartNew();
                var fields = trainer.Step(s, options.LearningRate);
                clock.Stop();
                if (s <= warmup) continue;
                stepSeconds += clock.Elapsed.TotalSeconds;
                generation += (double)fields["generation_s"]!;
                learning += (double)fields["learning_s"]!;
                tokens += (double)fields["response_length"]! * promptsPerStep * groupSize;
            }
            int promptTokens = encoder.Prompts(new[] { samples[0].Prompt }).TokenIds[0].Count;
            return new JsonObject
            {
                ["preset"] = preset,
                ["model"] = BenchVlm.Describe(model.Config),
                ["lora_rank"] = rank,
                ["steps"] = steps,
                ["prompts_per_step"] = promptsPerStep,
                ["group_size"] = groupSize,
                ["sequences_per_step"] = promptsPerStep * groupSize,
                ["prompt_tokens"] = promptTokens,
                ["max_new_tokens"] = maxNew,
                ["mean_completion_tokens"] = Math.Round(tokens / (steps * promptsPerStep * groupSize), 1),
                ["beta"] = beta,
                ["threads"] = get_num_threads(),
                // The machine may be shared: the load says how far the figures are from an idle one.
                ["load_average"] = File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Trim() : "n/a",
                ["seconds_per_step"] = Math.Round(stepSeconds / steps, 3),
                ["rollout_tokens_per_s"] = Math.Round(tokens / generation, 1),
                ["generation_share"] = Math.Round(generation / stepSeconds, 3),
                ["learning_share"] = Math.Round(learning / stepSeconds, 3),
                ["other_share"] = Math.Round(1 - (generation + learning) / stepSeconds, 3),
                ["method"] = "GrpoTrainer.Step on a random model; generation = rollouts (batched sampling with KV cache); " +
                             "learning = reference pass (adapter off, when beta > 0) + policy forward/backward + AdamW; other = rewards, advantages, bookkeeping",
            };
        }
        finally
        {
            try { Directory.Delete(dir, true); } catch (IOException) { }
        }
    }
}
