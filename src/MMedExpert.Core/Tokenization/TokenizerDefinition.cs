namespace MMedExpert.Core.Tokenization;

/// <summary>
/// The content of a Qwen2-format tokenizer.json that encoding depends on, already validated: the BPE vocabulary and
/// merges (in rank order), the added tokens, and the few options that change ids. The fixed parts of the pipeline
/// (NFC, Qwen2 split, byte level) are implied: a file with anything else is rejected when read.
/// </summary>
/// <param name="SourcePath">The file it came from (named in errors), or a description for an in-memory definition.</param>
/// <param name="Vocab">Model vocabulary: byte-level token string to id (ids need not be contiguous).</param>
/// <param name="Merges">Merge pairs of vocabulary tokens, first = highest priority.</param>
/// <param name="AddedTokens">Tokens matched whole before BPE, with their ids.</param>
/// <param name="IgnoreMerges">BPE option: a word that is itself in the vocabulary is emitted as one token without merging.</param>
/// <param name="EosToken">tokenizer_config.json's eos_token, when given.</param>
/// <param name="PadToken">tokenizer_config.json's pad_token, when given.</param>
public sealed record TokenizerDefinition(
    string SourcePath,
    IReadOnlyDictionary<string, int> Vocab,
    IReadOnlyList<(string Left, string Right)> Merges,
    IReadOnlyList<AddedToken> AddedTokens,
    bool IgnoreMerges = false,
    string? EosToken = null,
    string? PadToken = null);
