using System.Text;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;
using MMedExpert.Core.Tokenization;

namespace MMedExpert.Cli.Commands.Bench;

/// <summary>
/// Microsoft.ML.Tokenizers' BpeTokenizer configured as closely as it allows from the same tokenizer definition (byte
/// level, the Qwen2 regex as a .NET Regex, NFC, the added tokens as special tokens): the same-run baseline that
/// `mmx bench tokenizer` compares speed and parity against. It is not used for encoding anywhere else.
/// </summary>
public static class MlNetBpeBaseline
{
    sealed class NfcNormalizer : Normalizer
    {
        public override string Normalize(string original) => original.Normalize(NormalizationForm.FormC);
        public override string Normalize(ReadOnlySpan<char> original) => original.ToString().Normalize(NormalizationForm.FormC);
    }

    public static Tokenizer Create(TokenizerDefinition def)
    {
        var special = def.AddedTokens.ToDictionary(t => t.Content, t => t.Id);
        var regex = new Regex(Qwen2PreTokenizer.Pattern, RegexOptions.Compiled);
        var options = new BpeOptions(def.Vocab)
        {
            Merges = def.Merges.Select(m => $"{m.Left} {m.Right}").ToList(),
            ByteLevel = true,
            PreTokenizer = new RegexPreTokenizer(regex, special),
            Normalizer = new NfcNormalizer(),
            SpecialTokens = special,
        };
        return BpeTokenizer.Create(options);
    }
}
