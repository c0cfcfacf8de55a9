using MMedExpert.Core.IO;
using MMedExpert.Core.Tokenization;
using MMedExpert.Data.Schema;

namespace MMedExpert.Cli.Pipeline.Stages;

/// <summary>Stage 2: the tokenizer: the user's tokenizer.json, or a byte-level BPE trained on the training text.</summary>
public static class TokenizerStage
{
    public static string PathOf(RunContext run) => Path.Combine(run.RunDir, "tokenizer", "tokenizer.json");

    public static Stage Create(RunContext run) => new("tokenizer", "byte-level BPE tokenizer (Qwen2 format)", s =>
    {
        string path = PathOf(run);
        var c = run.Config.Base;
        if (!run.BuildsBase) return new List<string>(); // a checkpoint or the shipped base brings its own
        if (c.Tokenizer is not null)
        {
            Qwen2Tokenizer.FromFile(c.Tokenizer); // validates
            AtomicFile.Write(path, tmp => File.Copy(c.Tokenizer, tmp));
        }
        else
        {
            var texts = new List<string>();
            foreach (var split in new[] { "sft", "rl" })
                foreach (var item in run.Items(split))
                {
                    var sample = MedItemSamples.Training(item, run.DataDir, run.Trace);
                    texts.Add(sample.UserText);
                    texts.Add(sample.AssistantText!);
                    texts.Add(item.Reasoning);
                }
            var tok = BpeTrainer.TrainToFile(texts, path, new BpeTrainerOptions { Merges = c.TokenizerVocab });
            s.Log($"trained on {texts.Count} texts: {tok.VocabSize} ids");
        }
        return new List<string> { path };
    });
}
