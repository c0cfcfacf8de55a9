using System.Text.Json;
using System.Text.Json.Nodes;
using MMedExpert.Core.Vision;

namespace MMedExpert.Core.Export;

/// <summary>
/// The processor files of an export, read by transformers' AutoProcessor (Qwen2_5_VLProcessor) and by vLLM's
/// multimodal input processing: preprocessor_config.json (Qwen2VLImageProcessor: pixel limits, patch/merge/temporal
/// sizes, CLIP mean and std, rescale, bicubic resample) and chat_template.json ({"chat_template": ...}, where the
/// processor looks for its template).
/// </summary>
public static class HfProcessorFiles
{
    public const string PreprocessorFileName = "preprocessor_config.json";
    public const string ChatTemplateFileName = "chat_template.json";
    public const string ProcessorClass = "Qwen2_5_VLProcessor";

    /// <summary>
    /// The image processor's settings as the model was trained with: the source folder's preprocessor_config.json (read
    /// strictly by <see cref="ImageProcessorConfig"/>), or, without one, the defaults this project's commands then use.
    /// </summary>
    public static JsonObject PreprocessorConfig(string? sourcePath)
    {
        var config = sourcePath is not null && File.Exists(sourcePath) ? ImageProcessorConfig.Load(sourcePath) : ImageProcessorConfig.Default;
        var json = config.ToJson();
        json["processor_class"] = ProcessorClass;
        return json;
    }

    public static JsonObject ChatTemplate() => new() { ["chat_template"] = QwenChatTemplate.Jinja };

    public static void Write(string dir, string? preprocessorSource)
    {
        File.WriteAllText(Path.Combine(dir, PreprocessorFileName), PreprocessorConfig(preprocessorSource).ToJsonString(HfModelConfig.Json) + "\n");
        File.WriteAllText(Path.Combine(dir, ChatTemplateFileName), ChatTemplate().ToJsonString(HfModelConfig.Json) + "\n");
    }
}
