using System.CommandLine;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using MMedExpert.Core.Tokenization;

namespace MMedExpert.Cli.Commands;

/// <summary>
/// `mmx tokenize --tokenizer PATH [--decode]`: JSON lines on stdin to JSON lines on stdout. Encoding reads
/// {"text": ...} and writes {"text": ..., "ids": [...]} (special tokens parsed); --decode reads {"ids": [...]} and writes
/// {"ids": [...], "text": ...}. Other fields of a line are kept.
/// </summary>
public static class TokenizeCommand
{
    static readonly JsonSerializerOptions LineJson = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static Command Create()
    {
        var tokenizer = new Option<string>("--tokenizer") { Description = "tokenizer.json (a tokenizer_config.json next to it is read too)", Required = true };
        var decode = new Option<bool>("--decode") { Description = "Decode {\"ids\": [...]} lines instead of encoding {\"text\": ...} lines" };
        var skipSpecial = new Option<bool>("--skip-special") { Description = "With --decode: leave special tokens out of the text" };
        var cmd = new Command("tokenize", "Encode JSON lines {\"text\"} to {\"text\",\"ids\"} (or --decode the inverse), stdin to stdout");
        cmd.Options.Add(tokenizer);
        cmd.Options.Add(decode);
        cmd.Options.Add(skipSpecial);
        cmd.SetAction(parse =>
        {
            var tok = Qwen2Tokenizer.FromFile(parse.GetValue(tokenizer)!);
            bool dec = parse.GetValue(decode), skip = parse.GetValue(skipSpecial);
            // Console.In/Out (not the raw streams) so in-process callers can redirect them; one line out per line in.
            var stdin = Console.In;
            var stdout = Console.Out;
            int lineNo = 0;
            for (string? line; (line = stdin.ReadLine()) != null;)
            {
                lineNo++;
                if (string.IsNullOrWhiteSpace(line)) continue;
                var obj = ParseLine(line, lineNo);
                if (dec)
                {
                    if (obj["ids"] is not JsonArray arr) throw new TokenizerException($"stdin line {lineNo}: field \"ids\" missing or not an array");
                    var ids = arr.Select((n, i) => n is JsonValue v && v.TryGetValue(out int id)
                        ? id : throw new TokenizerException($"stdin line {lineNo}: ids[{i}] is not an integer")).ToArray();
                    obj["text"] = tok.Decode(ids, skip);
                }
                else
                {
                    if (obj["text"] is not JsonValue tv || !tv.TryGetValue(out string? text))
                        throw new TokenizerException($"stdin line {lineNo}: field \"text\" missing or not a string");
                    obj["ids"] = new JsonArray(tok.Encode(text).Select(i => (JsonNode)i).ToArray());
                }
                stdout.WriteLine(obj.ToJsonString(LineJson));
            }
            return 0;
        });
        return cmd;
    }

    static JsonObject ParseLine(string line, int lineNo)
    {
        try
        {
            return JsonNode.Parse(line) as JsonObject ?? throw new TokenizerException($"stdin line {lineNo}: expected a JSON object");
        }
        catch (JsonException e)
        {
            throw new TokenizerException($"stdin line {lineNo}: not valid JSON: {e.Message}", e);
        }
    }
}
