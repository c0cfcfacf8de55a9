using MMedExpert.Core;

namespace MMedExpert.Data;

/// <summary>Bad data: the message names the file, the line or item, and the field.</summary>
public class DataException : MmxException
{
    /// <summary>The field at fault (JSON name), or null when the whole line or file is at fault.</summary>
    public string? Field { get; }

    public DataException(string message, string? field = null) : base(message) { Field = field; }
    public DataException(string message, Exception inner, string? field = null) : base(message, inner) { Field = field; }

    /// <summary>"file:line: field 'name': problem" — the one shape of a line-level data error.</summary>
    public static DataException AtLine(string file, int line, string? field, string problem) =>
        new(field is null ? $"{file}:{line}: {problem}" : $"{file}:{line}: field '{field}': {problem}", field);
}
