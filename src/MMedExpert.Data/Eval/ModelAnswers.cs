using MMedExpert.Core.Model.Generation;
using MMedExpert.Core.Training;
using MMedExpert.Data.Benchmarks;

namespace MMedExpert.Data.Eval;

/// <summary>The evaluation harness's answer generator backed by a model: batched greedy decoding in the chat format.</summary>
public static class ModelAnswers
{
    public static Func<IReadOnlyList<EvalItem>, IReadOnlyList<string>> Greedy(Qwen25VLGenerator generator, VisionChatEncoder encoder, int maxNewTokens) =>
        batch =>
        {
            var prompts = encoder.Prompts(batch.Select(i => new VisionChatSample(i.ImagePaths, EvalPrompt.UserText(i))).ToList());
            try
            {
                var outputs = generator.Generate(prompts, new GenerationOptions { MaxNewTokens = maxNewTokens, StopTokenIds = encoder.StopTokenIds, SuppressTokenIds = encoder.SuppressTokenIds });
                return outputs.Select(o => o.Text).ToList();
            }
            finally { prompts.PixelValues?.Dispose(); prompts.ImageGridThw?.Dispose(); }
        };
}
