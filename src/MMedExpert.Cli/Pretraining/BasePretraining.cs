using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using MMedExpert.Core;
using MMedExpert.Core.IO;
using MMedExpert.Core.Model;
using MMedExpert.Core.Model.Generation;
using MMedExpert.Core.Tokenization;
using MMedExpert.Core.Training;
using MMedExpert.Core.Training.Sft;
using MMedExpert.Core.Vision;
using MMedExpert.Data.Eval;
using MMedExpert.Data.MedSynth;
using MMedExpert.Data.Schema;

namespace MMedExpert.Cli.Pretraining;

/// <summary>Settings of <c>mmx pretrain</c>; the defaults made the shipped base.</summary>
public sealed record PretrainSettings
{
    public required string OutDir { get; init; }
    /// <summary>Data, tokenizer, checkpoints and metrics; rerunning with the same folder resumes.</summary>
    public required string WorkDir { get; init; }
    public string Preset { get; init; } = "small";
    /// <summary>MedSynth items generated for pretraining, from their own seed (disjoint from any pipeline run's data).</summary>
    public int Items { get; init; } = 12_288;
    public ulong DataSeed { get; init; } = 7;
    /// <summary>The pipeline's MedSynth difficulty, so that the base perceives the images the pipeline evaluates on.</summary>
    public double Difficulty { get; init; } = 0.0;
    public long Seed { get; init; } = 7;
    public int TokenizerMerges { get; init; } = 2000;
    public int VisionSteps { get; init; } = 1200;
    public int VisionBatchSize { get; init; } = 32;
    public double VisionLearningRate { get; init; } = 1e-3;
    public int Steps { get; init; } = 5000;
    public int BatchSize { get; init; } = 8;
    public double LearningRate { get; init; } = 2e-3;
    public string Dtype { get; init; } = "bf16";
    public int CheckpointEvery { get; init; } = 200;
    /// <summary>
    /// Keep the warmed vision tower frozen while the language model learns to read it (off by default: the shipped base,
    /// commit e80a73a, trained the whole model, and the defaults reproduce it). Its tower's probe read every image finding
    /// at 97–100 % before pretraining and the finished base read them at chance, which is what this switch tests; the
    /// scratch path has always frozen it (<c>base.freeze_warmed_vision</c>).
    /// </summary>
    public bool FreezeVision { get; init; }
    /// <summary>Held-out items (the data's test split) the readout decodes.</summary>
    public int ReadoutItems { get; init; } = 400;
    /// <summary>
    /// The least share of held-out diagnosis answers in the strict format for the base to be written to the output folder;
    /// below it the model goes to WORK/rejected and the run fails. A base that cannot write the format makes every model
    /// the pipeline derives from it unreadable (two bases of session 10 wrote it in 45.5 % and 0 %: paper/learnability,
    /// section 11).
    /// </summary>
    public double MinFormatRate { get; init; } = 0.9;
    public string Command { get; init; } = "";
}

/// <summary>
/// Pretrains the embedded base on perception and the answer format (<see cref="PerceptionCurriculum"/>): MedSynth data
/// of its own seed, a BPE tokenizer on its text, the vision tower warmed up on the image-finding labels, then the whole
/// model fine-tuned on the curriculum (bf16 mixed precision by default). Every phase resumes from the work folder. The
/// result is read out on held-out items (each finding, the finding questions, and the diagnosis, which must stay near
/// chance) and saved in bf16 with its tokenizer and <see cref="ShippedBase.ProvenanceFile"/>.
/// </summary>
public static class BasePretraining
{
    /// <summary>Runs (or resumes) every phase; null when cancelled (the checkpoints keep what was done; rerun to resume).</summary>
    public static ShippedBaseProvenance? Run(PretrainSettings p, ProgressReporter progress, Action<string> log, CancellationToken cancel = default)
    {
        var clock = Stopwatch.StartNew();
        // Read when the run starts: the code that trains is the code of this commit, even if HEAD moves meanwhile.
        string commit = GitCommit();
        var compute = MixedPrecision.Parse(p.Dtype);
        string dataDir = Path.Combine(p.WorkDir, "data");
        if (!File.Exists(Path.Combine(dataDir, "report.json")))
        {
            var o = new MedSynthOptions(N: p.Items, Seed: p.DataSeed, Difficulty: p.Difficulty);
            var (_, generated) = MedSynthGenerator.Write(dataDir, o);
            log($"data: {p.Items} MedSynth items (seed {p.DataSeed}) in {generated:0.0} s → {dataDir}");
        }
        else RequireSameData(dataDir, p);
        var train = new[] { "sft", "rl", "val" }.SelectMany(split => Items(dataDir, split)).ToList();
        var heldOut = Items(dataDir, "test");

        var samples = train.SelectMany((item, i) => PerceptionCurriculum.Samples(item, dataDir, p.DataSeed, i)).ToList();
        string tokenizerDir = Path.Combine(p.WorkDir, "tokenizer");
        var tokenizer = TrainTokenizer(tokenizerDir, train, p, log);
        var processorConfig = new ImageProcessorConfig();
        AtomicFile.WriteAllText(Path.Combine(tokenizerDir, "preprocessor_config.json"), processorConfig.ToJson().ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        var processor = new ImageProcessor(processorConfig);
        var encoder = new VisionChatEncoder(tokenizer, processor);

        var config = Qwen25VLConfig.Preset(p.Preset).WithTokenizer(tokenizer);
        using var model = Qwen25VL.CreateRandom(config, p.Seed);
        log($"{p.Preset}: {model.ParameterCount():N0} parameters, vocabulary {config.VocabSize}; {samples.Count} curriculum samples from {train.Count} items");

        var warm = VisionWarmup.Train(model.visual, processor, ImageFindingLabels.Samples(train, dataDir)!, ImageFindingLabels.Samples(heldOut, dataDir)!,
            ImageFindingLabels.Count, new TrainerOptions
            {
                LearningRate = p.VisionLearningRate, WarmupSteps = Math.Max(1, p.VisionSteps / 10), TotalSteps = p.VisionSteps, ClipNorm = 1.0,
                Seed = p.Seed, OutputDir = Path.Combine(p.WorkDir, "vision-warmup"), CheckpointEvery = p.CheckpointEvery, Description = "vision warm-up",
            }, p.VisionBatchSize, progress, resume: true, cancel);
        if (!warm.Run.Completed) return null;
        log("vision warm-up (linear probe) held-out accuracy: " + string.Join(", ", warm.HeldOutAccuracy.Select((a, i) => $"{ImageFindingLabels.Name(i)} {100 * a:0.0} %")));

        // A frozen tower gets requires_grad off, so backward stops at its output and the optimizer holds the decoder only.
        if (p.FreezeVision)
            foreach (var parameter in model.visual.parameters()) parameter.requires_grad = false;
        var trained = model.parameters().Where(x => x.requires_grad).ToList();
        log($"pretraining {trained.Sum(x => x.numel()):N0} parameters" + (p.FreezeVision ? " (vision tower frozen)" : " (whole model)"));
        MixedPrecision.Apply(model, compute);
        var run = SftRunner.Train(model, encoder, samples, trained, new TrainerOptions
        {
            LearningRate = p.LearningRate, WarmupSteps = Math.Max(1, p.Steps / 20), TotalSteps = p.Steps, ClipNorm = 1.0, Seed = p.Seed,
            OutputDir = Path.Combine(p.WorkDir, "pretrain"), CheckpointEvery = p.CheckpointEvery, Description = "pretrain",
        }, p.BatchSize, progress: progress, resume: true, cancel: cancel);
        log($"pretraining: steps {run.FirstStep}–{run.LastStep} this session, loss {run.Losses.FirstOrDefault():F3} → {run.Losses.LastOrDefault():F3}");
        if (!run.Completed) return null;

        var readout = Readout(model, encoder, heldOut.Take(p.ReadoutItems).ToList(), dataDir, p.DataSeed, log);
        double seconds = SessionSeconds(p.WorkDir, clock.Elapsed.TotalSeconds);
        bool rejected = readout.Format < p.MinFormatRate;
        string destination = rejected ? Path.Combine(p.WorkDir, "rejected") : p.OutDir;
        // Weights and provenance appear together or not at all.
        ShippedBaseProvenance provenance = null!;
        AtomicFile.WriteDirectory(destination, tmp =>
        {
            Qwen25VL.Save(model, tmp, companionsFrom: tokenizerDir, dtype: TorchSharp.torch.ScalarType.BFloat16);
            provenance = new ShippedBaseProvenance
            {
                Command = p.Command, Commit = commit, Seed = p.Seed, DataSeed = p.DataSeed, Items = p.Items, Difficulty = p.Difficulty, Preset = p.Preset,
                VisionSteps = p.VisionSteps, FreezeVision = p.FreezeVision, Steps = p.Steps, BatchSize = p.BatchSize, LearningRate = p.LearningRate, Dtype = p.Dtype,
                WallSeconds = Math.Round(seconds, 1), FinalLoss = run.Losses.Count > 0 ? run.Losses[^1] : null,
                ReadoutItems = readout.Items, FindingAccuracy = readout.Findings, FindingQuestionAccuracy = readout.FindingQuestions,
                FormatRate = readout.Format, DiagnosisAccuracy = readout.Diagnosis,
                Sha256 = ShippedBase.Sha256(Path.Combine(tmp, ShippedBase.WeightsFile)),
            };
            ShippedBase.WriteProvenance(tmp, provenance);
        });
        if (rejected)
            throw new MmxException($"the pretrained base writes the answer format in {100 * readout.Format:0.0} % of its {readout.Items} held-out " +
                $"diagnosis answers, below the {100 * p.MinFormatRate:0.#} % required (--min-format); it was written to {destination} " +
                $"for inspection, not to {p.OutDir}");
        return provenance;
    }

    static List<MedItem> Items(string dataDir, string split) => MedItemLoader.Load(Path.Combine(dataDir, split + ".jsonl")).Items.ToList();

    static void RequireSameData(string dataDir, PretrainSettings p)
    {
        var report = JsonNode.Parse(File.ReadAllText(Path.Combine(dataDir, "report.json")))!;
        if (report["n"]?.GetValue<int>() != p.Items || report["seed"]?.GetValue<ulong>() != p.DataSeed || report["difficulty"]?.GetValue<double>() != p.Difficulty)
            throw new MmxException($"{dataDir}: holds {report["n"]} items of seed {report["seed"]}, (difficulty {report["difficulty"]}), not {p.Items} of seed {p.DataSeed} (difficulty {p.Difficulty}); use another --work folder");
    }

    /// <summary>A byte-level BPE on the curriculum's text and the items' traces (vocabulary only: what later stages will write).</summary>
    static Qwen2Tokenizer TrainTokenizer(string dir, IReadOnlyList<MedItem> items, PretrainSettings p, Action<string> log)
    {
        string path = Path.Combine(dir, "tokenizer.json");
        if (File.Exists(path)) return Qwen2Tokenizer.FromFile(path);
        const int textItems = 4000;   // enough text for 2000 merges; the rest repeats it
        // From the items alone (prompts, traces, finding questions), so the tokenizer does not depend on the curriculum's targets.
        var texts = items.Take(textItems).SelectMany(i => new[]
        {
            MedItemSamples.Prompt(i, "").UserText, MedItemSamples.CompactTrace(i), i.Reasoning,
            MedItemSamples.Prompt(PerceptionCurriculum.FindingQuestionItem(i, SeededRandom.For(p.DataSeed, 13, 0)), "").UserText,
        }).ToList();
        var tokenizer = BpeTrainer.TrainToFile(texts, path, new BpeTrainerOptions { Merges = p.TokenizerMerges });
        log($"tokenizer: {tokenizer.VocabSize} ids from {texts.Count} texts → {path}");
        return tokenizer;
    }

    public sealed record ReadoutResult(int Items, Dictionary<string, double?> Findings, double FindingQuestions, double Format, double Diagnosis);

    /// <summary>
    /// Greedy answers on held-out items: each finding read in the diagnosis prompt's trace, the finding questions
    /// answered, the share of diagnosis answers in the &lt;think&gt;…&lt;/answer&gt; format, and the diagnosis accuracy.
    /// </summary>
    public static ReadoutResult Readout(Qwen25VLForConditionalGeneration model, VisionChatEncoder encoder, IReadOnlyList<MedItem> items,
        string dataDir, ulong dataSeed, Action<string> log)
    {
        var generator = new Qwen25VLGenerator(model, ids => encoder.Tokenizer.Decode(ids, skipSpecial: true));
        var answer = ModelAnswers.Greedy(generator, encoder, maxNewTokens: 64);
        var readout = new FindingReadout();
        int questionsRight = 0, formatted = 0, diagnosesRight = 0;
        const int batch = 16;
        for (int start = 0; start < items.Count; start += batch)
        {
            var chunk = items.Skip(start).Take(batch).ToList();
            var questions = chunk.Select((item, k) => PerceptionCurriculum.FindingQuestionItem(item,
                SeededRandom.For(dataSeed, 12, (ulong)(start + k)))).ToList();
            var outputs = answer(chunk.Select(i => MedSynthBenchItem(i, dataDir)).ToList());
            var questionOutputs = answer(questions.Select(i => MedSynthBenchItem(i, dataDir)).ToList());
            for (int k = 0; k < chunk.Count; k++)
            {
                readout.Add(chunk[k], outputs[k]);
                var diagnosis = EvalHarness.Grade(MedSynthBenchItem(chunk[k], dataDir), outputs[k]);
                if (diagnosis.Correct) diagnosesRight++;
                if (ReasoningFormat.IsStrict(outputs[k])) formatted++;
                if (EvalHarness.Grade(MedSynthBenchItem(questions[k], dataDir), questionOutputs[k]).Correct) questionsRight++;
            }
        }
        var accuracy = readout.Accuracy();
        var findings = Enumerable.Range(0, FindingReadout.Count).ToDictionary(FindingReadout.Name, i => double.IsNaN(accuracy[i]) ? (double?)null : Math.Round(accuracy[i], 4));
        foreach (var (name, a) in findings) log($"  {name}: " + (a is { } v ? $"{100 * v:0.0} %" : "no held-out item"));
        var result = new ReadoutResult(items.Count, findings, Math.Round((double)questionsRight / items.Count, 4),
            Math.Round((double)formatted / items.Count, 4), Math.Round((double)diagnosesRight / items.Count, 4));
        log($"held-out readout on {items.Count} items: finding questions {100 * result.FindingQuestions:0.0} %, format {100 * result.Format:0.0} %, diagnosis {100 * result.Diagnosis:0.0} % (chance about 20 %)");
        return result;
    }

    static Data.Benchmarks.EvalItem MedSynthBenchItem(MedItem item, string dataDir) => Data.Benchmarks.MedSynthBench.ToEvalItem(item, dataDir);

    /// <summary>Wall time over every session of a resumed run: each session adds its own to work/sessions.jsonl.</summary>
    static double SessionSeconds(string workDir, double thisSession)
    {
        string path = Path.Combine(workDir, "sessions.jsonl");
        File.AppendAllText(path, JsonSerializer.Serialize(new { seconds = Math.Round(thisSession, 1), ended = DateTime.UtcNow.ToString("o") }) + "\n");
        return File.ReadAllLines(path).Sum(l => JsonNode.Parse(l)!["seconds"]!.GetValue<double>());
    }

    static string GitCommit()
    {
        try
        {
            var git = Process.Start(new ProcessStartInfo("git", "rev-parse HEAD") { RedirectStandardOutput = true, RedirectStandardError = true })!;
            string head = git.StandardOutput.ReadToEnd().Trim();
            git.WaitForExit();
            if (git.ExitCode != 0) return "unknown";
            var dirty = Process.Start(new ProcessStartInfo("git", "status --porcelain --untracked-files=no") { RedirectStandardOutput = true })!;
            bool isDirty = dirty.StandardOutput.ReadToEnd().Trim().Length > 0;
            dirty.WaitForExit();
            return isDirty ? head + "-dirty" : head;
        }
        catch (System.ComponentModel.Win32Exception) { return "unknown"; }
    }
}
