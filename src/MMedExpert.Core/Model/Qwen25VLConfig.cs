using System.Text.Json;
using System.Text.Json.Nodes;
using MMedExpert.Core.IO;
using MMedExpert.Core.Model.Vision;

namespace MMedExpert.Core.Model;

/// <summary>
/// The configuration of a Qwen2.5-VL model, read from and written to a Hugging Face config.json.
/// Older files keep the language-model fields at the top level; newer ones nest them under `text_config`: both are read
/// (text_config first). Token ids and `vision_config` are read at the top level.
/// </summary>
public sealed record Qwen25VLConfig
{
    // Language model
    public required int VocabSize { get; init; }
    public required int HiddenSize { get; init; }
    public required int IntermediateSize { get; init; }
    public required int NumHiddenLayers { get; init; }
    public required int NumAttentionHeads { get; init; }
    public required int NumKeyValueHeads { get; init; }
    public int MaxPositionEmbeddings { get; init; } = 128000;
    public double RopeTheta { get; init; } = 1_000_000.0;
    public double RmsNormEps { get; init; } = 1e-6;
    public bool TieWordEmbeddings { get; init; }
    /// <summary>Rotary frequency pairs given to the temporal, height and width positions; sums to head_dim / 2.</summary>
    public required int[] MropeSection { get; init; }

    // Special tokens (Qwen2.5-VL's ids by default, as in the reference configuration class)
    public int ImageTokenId { get; init; } = 151655;
    public int VideoTokenId { get; init; } = 151656;
    public int VisionStartTokenId { get; init; } = 151652;
    public int VisionEndTokenId { get; init; } = 151653;
    public int? BosTokenId { get; init; } = 151643;
    public int? EosTokenId { get; init; } = 151645;
    public int? PadTokenId { get; init; }

    public required VisionConfig Vision { get; init; }

    /// <summary>The file the config came from (for error messages), or the preset's name.</summary>
    public string Source { get; init; } = "config";

    /// <summary>The parsed file, kept so that saving preserves keys this class does not model (architectures, torch_dtype, ...).</summary>
    public JsonObject? OriginalJson { get; init; }

    public int HeadDim => HiddenSize / NumAttentionHeads;
    public int KeyValueGroups => NumAttentionHeads / NumKeyValueHeads;
    /// <summary>The token used to left-pad batches (masked out, so any id inside the vocabulary works).</summary>
    public int PaddingTokenId => PadTokenId ?? EosTokenId ?? 0;

    /// <summary>Checks the relations between fields that the model relies on; throws naming the key.</summary>
    public Qwen25VLConfig Validate()
    {
        void Require(bool ok, string key, string why)
        {
            if (!ok) throw new ModelConfigException($"{Source}: {key}: {why}");
        }
        Require(VocabSize > 0, "vocab_size", $"must be positive (got {VocabSize})");
        Require(HiddenSize > 0 && NumAttentionHeads > 0 && HiddenSize % NumAttentionHeads == 0, "num_attention_heads",
            $"hidden_size {HiddenSize} must be a positive multiple of num_attention_heads {NumAttentionHeads}");
        Require(NumKeyValueHeads > 0 && NumAttentionHeads % NumKeyValueHeads == 0, "num_key_value_heads",
            $"num_attention_heads {NumAttentionHeads} must be a multiple of num_key_value_heads {NumKeyValueHeads}");
        Require(NumHiddenLayers > 0, "num_hidden_layers", $"must be positive (got {NumHiddenLayers})");
        Require(IntermediateSize > 0, "intermediate_size", $"must be positive (got {IntermediateSize})");
        Require(MropeSection.Length == 3 && MropeSection.All(s => s >= 0) && MropeSection.Sum() * 2 == HeadDim, "rope_scaling.mrope_section",
            $"needs 3 non-negative entries summing to head_dim/2 = {HeadDim / 2} (got [{string.Join(", ", MropeSection)}])");
        Vision.Validate($"{Source}: vision_config");
        Require(Vision.OutHiddenSize == HiddenSize, "vision_config.out_hidden_size",
            $"must equal hidden_size {HiddenSize} (got {Vision.OutHiddenSize})");
        foreach (var (key, id) in new[] { ("image_token_id", ImageTokenId), ("vision_start_token_id", VisionStartTokenId), ("vision_end_token_id", VisionEndTokenId) })
            Require(id >= 0 && id < VocabSize, key, $"{id} is outside the vocabulary of {VocabSize}");
        // Generation pads with these and stops at eos: they must be rows of the embedding.
        foreach (var (key, id) in new[] { ("eos_token_id", EosTokenId), ("pad_token_id", PadTokenId) })
            Require(id is null || (id >= 0 && id < VocabSize), key, $"{id} is outside the vocabulary of {VocabSize}");
        return this;
    }

    // ---------------------------------------------------------------- reading

    public static Qwen25VLConfig Load(string path)
    {
        string file = Directory.Exists(path) ? Path.Combine(path, "config.json") : path;
        if (!File.Exists(file)) throw new ModelConfigException($"{file}: config.json not found");
        return Parse(File.ReadAllText(file), file);
    }

    public static Qwen25VLConfig Parse(string json, string source)
    {
        JsonObject root;
        try
        {
            root = JsonNode.Parse(json) as JsonObject ?? throw new ModelConfigException($"{source}: not a JSON object");
        }
        catch (JsonException e)
        {
            throw new ModelConfigException($"{source}: invalid JSON ({e.Message})");
        }
        var text = root["text_config"] as JsonObject;
        ConfigKeys.Check(root, source, null);
        if (text is not null) ConfigKeys.Check(text, source, "text_config");

        // A text field: text_config first (newer files), then the top level (older files).
        JsonNode? Find(string key) => text?[key] ?? root[key];
        T Get<T>(string key, JsonNode? node)
        {
            try
            {
                return node!.GetValue<T>();
            }
            catch (Exception e) when (e is InvalidOperationException or FormatException or NullReferenceException)
            {
                throw new ModelConfigException($"{source}: {key}: expected a {typeof(T).Name}, got {node?.ToJsonString() ?? "null"}");
            }
        }
        T Required<T>(string key) => Find(key) is JsonNode n ? Get<T>(key, n) : throw new ModelConfigException($"{source}: missing required key '{key}'");
        T Optional<T>(string key, T fallback) => Find(key) is JsonNode n ? Get<T>(key, n) : fallback;
        int? OptionalId(string key) => Find(key) switch
        {
            null => null,
            JsonArray a => a.Count > 0 ? Get<int>(key, a[0]) : null, // some files list several eos ids: the first is the chat end
            JsonNode n => Get<int>(key, n),
        };

        var rope = Find("rope_scaling") as JsonObject ?? throw new ModelConfigException($"{source}: missing required key 'rope_scaling.mrope_section'");
        var sectionNode = rope["mrope_section"] as JsonArray ?? throw new ModelConfigException($"{source}: missing required key 'rope_scaling.mrope_section'");
        int[] section = sectionNode.Select(n => Get<int>("rope_scaling.mrope_section", n)).ToArray();
        var visionNode = root["vision_config"] as JsonObject ?? throw new ModelConfigException($"{source}: missing required key 'vision_config'");

        int heads = Required<int>("num_attention_heads");
        var defaults = new { Image = 151655, Video = 151656, Start = 151652, End = 151653 };
        var config = new Qwen25VLConfig
        {
            VocabSize = Required<int>("vocab_size"),
            HiddenSize = Required<int>("hidden_size"),
            IntermediateSize = Required<int>("intermediate_size"),
            NumHiddenLayers = Required<int>("num_hidden_layers"),
            NumAttentionHeads = heads,
            NumKeyValueHeads = Optional("num_key_value_heads", heads),
            MaxPositionEmbeddings = Optional("max_position_embeddings", 128000),
            RopeTheta = Optional("rope_theta", 1_000_000.0),
            RmsNormEps = Optional("rms_norm_eps", 1e-6),
            // tie_word_embeddings may sit at the top level even in newer files.
            TieWordEmbeddings = root["tie_word_embeddings"] is JsonNode tie ? Get<bool>("tie_word_embeddings", tie) : Optional("tie_word_embeddings", false),
            MropeSection = section,
            ImageTokenId = root["image_token_id"] is JsonNode i ? Get<int>("image_token_id", i) : Optional("image_token_id", defaults.Image),
            VideoTokenId = root["video_token_id"] is JsonNode v ? Get<int>("video_token_id", v) : Optional("video_token_id", defaults.Video),
            VisionStartTokenId = root["vision_start_token_id"] is JsonNode s ? Get<int>("vision_start_token_id", s) : Optional("vision_start_token_id", defaults.Start),
            VisionEndTokenId = root["vision_end_token_id"] is JsonNode end ? Get<int>("vision_end_token_id", end) : Optional("vision_end_token_id", defaults.End),
            BosTokenId = OptionalId("bos_token_id"),
            EosTokenId = OptionalId("eos_token_id"),
            PadTokenId = OptionalId("pad_token_id"),
            Vision = VisionConfig.FromJson(JsonSerializer.Deserialize<JsonElement>(WithReferenceVisionDefaults(visionNode).ToJsonString()), $"{source}: vision_config"),
            Source = source,
            OriginalJson = root,
        };
        return config.Validate();
    }

    /// <summary>
    /// The published Qwen2.5-VL-3B/7B-Instruct config.json files list only the vision keys that differ from the defaults of
    /// the reference's Qwen2_5_VLVisionConfig (e.g. hidden_size, out_hidden_size, tokens_per_second): the tower's depth,
    /// width, heads and full-attention blocks are those defaults. They are filled in here, before the strict reader.
    /// </summary>
    static JsonObject WithReferenceVisionDefaults(JsonObject vision)
    {
        var filled = (JsonObject)vision.DeepClone();
        var defaults = new JsonObject
        {
            ["depth"] = 32, ["hidden_size"] = 3584, ["intermediate_size"] = 3420, ["num_heads"] = 16,
            ["out_hidden_size"] = 3584, ["fullatt_block_indexes"] = new JsonArray(7, 15, 23, 31),
        };
        foreach (var (key, value) in defaults)
            if (!filled.ContainsKey(key)) filled[key] = value!.DeepClone();
        return filled;
    }

    // ---------------------------------------------------------------- writing

    /// <summary>
    /// The config.json text in the Hugging Face layout: the original file's keys are kept, the fields of this record
    /// overwrite them at the top level (read by every transformers version) and, when the file had one, in text_config.
    /// </summary>
    public string ToJson()
    {
        var root = OriginalJson?.DeepClone() as JsonObject ?? new JsonObject
        {
            ["architectures"] = new JsonArray("Qwen2_5_VLForConditionalGeneration"),
            ["model_type"] = "qwen2_5_vl",
            ["hidden_act"] = "silu",
            ["attention_dropout"] = 0.0,
            ["initializer_range"] = 0.02,
            ["use_cache"] = true,
            ["use_sliding_window"] = false,
            ["sliding_window"] = 32768,
            ["max_window_layers"] = NumHiddenLayers,
        };
        var text = new JsonObject
        {
            ["vocab_size"] = VocabSize,
            ["hidden_size"] = HiddenSize,
            ["intermediate_size"] = IntermediateSize,
            ["num_hidden_layers"] = NumHiddenLayers,
            ["num_attention_heads"] = NumAttentionHeads,
            ["num_key_value_heads"] = NumKeyValueHeads,
            ["max_position_embeddings"] = MaxPositionEmbeddings,
            ["rope_theta"] = RopeTheta,
            ["rms_norm_eps"] = RmsNormEps,
            ["tie_word_embeddings"] = TieWordEmbeddings,
            ["rope_scaling"] = new JsonObject
            {
                ["type"] = "default",
                ["rope_type"] = "default",
                ["mrope_section"] = new JsonArray(MropeSection.Select(s => (JsonNode)s).ToArray()),
            },
        };
        void SetAll(JsonObject target)
        {
            foreach (var (k, v) in text) target[k] = v!.DeepClone();
        }
        SetAll(root);
        if (root["text_config"] is JsonObject nested) SetAll(nested);
        root["image_token_id"] = ImageTokenId;
        root["video_token_id"] = VideoTokenId;
        root["vision_start_token_id"] = VisionStartTokenId;
        root["vision_end_token_id"] = VisionEndTokenId;
        // Token ids nested in text_config are read before the top level: keep them in step too.
        var nestedText = root["text_config"] as JsonObject;
        void SetId(string key, int? id)
        {
            if (id is int x) root[key] = x;
            else root.Remove(key);
            if (nestedText?.ContainsKey(key) == true)
            {
                if (id is int y) nestedText[key] = y;
                else nestedText.Remove(key);
            }
        }
        SetId("bos_token_id", BosTokenId);
        SetId("eos_token_id", EosTokenId);
        SetId("pad_token_id", PadTokenId);
        // Keep vision keys this project does not model (e.g. hidden_act, torch_dtype), overwrite the modelled ones.
        var vision = root["vision_config"] as JsonObject ?? new JsonObject();
        foreach (var (k, v) in Vision.ToJson()) vision[k] = v!.DeepClone();
        root["vision_config"] = vision;
        return root.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    public void Save(string path) => AtomicFile.WriteAllText(path, ToJson());

    // ---------------------------------------------------------------- tokenizer

    /// <summary>
    /// This shape over <paramref name="tokenizer"/>'s vocabulary: vocab_size = the tokenizer's size, and the special ids
    /// the model and generation read taken from it (image/video pad, vision start/end, eos = &lt;|im_end|&gt; which ends an
    /// assistant turn, bos = pad = &lt;|endoftext|&gt; as in Qwen2.5-VL's own files). For models built over a small trained
    /// tokenizer (<see cref="Tokenization.BpeTrainer"/>); a tokenizer without one of those tokens is an error naming its file.
    /// </summary>
    public Qwen25VLConfig WithTokenizer(Tokenization.Qwen2Tokenizer tokenizer)
    {
        int endOfText = tokenizer.EndOfText;
        return (this with
        {
            VocabSize = tokenizer.VocabSize,
            ImageTokenId = tokenizer.ImagePad,
            VideoTokenId = tokenizer.VideoPad,
            VisionStartTokenId = tokenizer.VisionStart,
            VisionEndTokenId = tokenizer.VisionEnd,
            EosTokenId = tokenizer.ImEnd,
            BosTokenId = endOfText,
            PadTokenId = endOfText,
            Source = $"{Source} over {tokenizer.SourcePath}",
        }).Validate();
    }

    // ---------------------------------------------------------------- presets

    /// <summary>The vocabulary of the published Qwen2.5 checkpoints (tokenizer entries plus unused padding rows).</summary>
    public const int QwenVocabSize = 151936;

    public static readonly IReadOnlyList<string> PresetNames = new[] { "tiny", "small", "qwen2.5-0.5b-shape", "3b", "7b" };

    /// <summary>
    /// Named shapes: <c>tiny</c> (tests), <c>small</c> (the pipeline's default, trains on 2 CPU cores), <c>qwen2.5-0.5b-shape</c>
    /// (benchmarks: the language model of Qwen2.5-0.5B with a tiny vision tower), <c>3b</c> and <c>7b</c> (the published models).
    /// <paramref name="vocabSize"/> overrides the vocabulary of tiny/small (e.g. the tokenizer's size); it must still hold the
    /// special token ids.
    /// </summary>
    public static Qwen25VLConfig Preset(string name, int? vocabSize = null)
    {
        Qwen25VLConfig config = name.ToLowerInvariant() switch
        {
            "tiny" => new Qwen25VLConfig
            {
                VocabSize = vocabSize ?? QwenVocabSize, HiddenSize = 64, IntermediateSize = 128, NumHiddenLayers = 2,
                NumAttentionHeads = 4, NumKeyValueHeads = 2, MropeSection = new[] { 2, 3, 3 }, TieWordEmbeddings = true,
                MaxPositionEmbeddings = 4096, Vision = VisionConfig.Tiny(64),
            },
            "small" => new Qwen25VLConfig
            {
                VocabSize = vocabSize ?? QwenVocabSize, HiddenSize = 256, IntermediateSize = 688, NumHiddenLayers = 4,
                NumAttentionHeads = 4, NumKeyValueHeads = 2, MropeSection = new[] { 8, 12, 12 }, TieWordEmbeddings = true,
                MaxPositionEmbeddings = 8192, Vision = VisionConfig.Small(256),
            },
            "qwen2.5-0.5b-shape" or "0.5b" => new Qwen25VLConfig
            {
                VocabSize = vocabSize ?? QwenVocabSize, HiddenSize = 896, IntermediateSize = 4864, NumHiddenLayers = 24,
                NumAttentionHeads = 14, NumKeyValueHeads = 2, MropeSection = new[] { 8, 12, 12 }, TieWordEmbeddings = true,
                MaxPositionEmbeddings = 32768, Vision = VisionConfig.Tiny(896),
            },
            "3b" => new Qwen25VLConfig
            {
                VocabSize = vocabSize ?? QwenVocabSize, HiddenSize = 2048, IntermediateSize = 11008, NumHiddenLayers = 36,
                NumAttentionHeads = 16, NumKeyValueHeads = 2, MropeSection = new[] { 16, 24, 24 }, TieWordEmbeddings = true,
                Vision = VisionConfig.Qwen25VL3B,
            },
            "7b" => new Qwen25VLConfig
            {
                VocabSize = vocabSize ?? 152064, HiddenSize = 3584, IntermediateSize = 18944, NumHiddenLayers = 28,
                NumAttentionHeads = 28, NumKeyValueHeads = 4, MropeSection = new[] { 16, 24, 24 }, TieWordEmbeddings = false,
                Vision = VisionConfig.Qwen25VL7B,
            },
            _ => throw new ModelConfigException($"preset '{name}': unknown (known: {string.Join(", ", PresetNames)})"),
        };
        return (config with { Source = $"preset {name}" }).Validate();
    }
}
