namespace MMedExpert.Core.Model;

/// <summary>
/// The keys a Qwen2.5-VL config.json may hold (top level and text_config): those the model reads, and those transformers
/// writes that do not change the arithmetic (bookkeeping, generation defaults of PretrainedConfig, the sliding-window
/// switch Qwen2.5-VL leaves off). Anything else, e.g. <c>quantization_config</c> or a misspelt key, is refused by
/// <see cref="Qwen25VLConfig.Parse"/>: a key the loader silently skipped could mean a model other than the one computed.
/// The vision_config is checked by its own strict reader.
/// </summary>
static class ConfigKeys
{
    public static readonly HashSet<string> Read = new(StringComparer.Ordinal)
    {
        "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
        "max_position_embeddings", "rope_theta", "rms_norm_eps", "tie_word_embeddings", "rope_scaling",
        "image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id",
        "bos_token_id", "eos_token_id", "pad_token_id", "vision_config", "text_config",
    };

    public static readonly HashSet<string> KnownIgnored = new(StringComparer.Ordinal)
    {
        // Qwen2.5-VL's own: bookkeeping and the sliding-window switch (off in every published model)
        "architectures", "model_type", "hidden_act", "attention_dropout", "initializer_range", "use_cache",
        "use_sliding_window", "sliding_window", "max_window_layers", "layer_types", "vision_token_id",
        "torch_dtype", "dtype", "transformers_version", "_name_or_path", "_commit_hash",
        "_attn_implementation", "_attn_implementation_autoset", "attn_implementation",
        // PretrainedConfig's common attributes (outputs, generation defaults, task heads): none changes the forward pass
        "return_dict", "output_hidden_states", "output_attentions", "torchscript", "use_bfloat16", "tf_legacy_loss",
        "pruned_heads", "chunk_size_feed_forward", "is_encoder_decoder", "is_decoder", "cross_attention_hidden_size",
        "add_cross_attention", "tie_encoder_decoder", "max_length", "min_length", "do_sample", "early_stopping",
        "num_beams", "num_beam_groups", "diversity_penalty", "temperature", "top_k", "top_p", "typical_p",
        "repetition_penalty", "length_penalty", "no_repeat_ngram_size", "encoder_no_repeat_ngram_size", "bad_words_ids",
        "num_return_sequences", "output_scores", "return_dict_in_generate", "forced_bos_token_id", "forced_eos_token_id",
        "remove_invalid_values", "exponential_decay_length_penalty", "suppress_tokens", "begin_suppress_tokens",
        "finetuning_task", "id2label", "label2id", "tokenizer_class", "prefix", "sep_token_id", "decoder_start_token_id",
        "task_specific_params", "problem_type",
    };

    /// <summary>Throws naming the file and the first unknown key of <paramref name="section"/> (null: the top level).</summary>
    public static void Check(System.Text.Json.Nodes.JsonObject obj, string source, string? section)
    {
        foreach (var (key, _) in obj)
            if (!Read.Contains(key) && !KnownIgnored.Contains(key))
                throw new ModelConfigException($"{source}: unknown config key '{(section is null ? key : section + "." + key)}' " +
                    "(not a Qwen2.5-VL field this loader reads or knows to be inert; a quantized or other-architecture checkpoint is not supported)");
    }
}
