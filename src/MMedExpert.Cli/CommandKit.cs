using System.CommandLine;
using System.Text.Json;
using MMedExpert.Core;
using MMedExpert.Core.Runtime;

namespace MMedExpert.Cli;

/// <summary>What every command shares: global options, error handling, JSON output.</summary>
public static class CommandKit
{
    public static readonly Option<int?> Threads = new("--threads")
    {
        Description = $"Torch CPU threads (default: all cores; env {TorchRuntime.ThreadsVariable})",
        Recursive = true,
    };

    public static readonly Option<bool> Verbose = new("--verbose")
    {
        Description = "Print the full .NET stack trace on errors",
        Recursive = true,
    };

    public static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping, // plain '+', '<' in console output
    };

    public static void AddGlobalOptions(RootCommand root)
    {
        root.Options.Add(Threads);
        root.Options.Add(Verbose);
    }

    /// <summary>Applies the global options that configure torch; commands call it before any tensor work.</summary>
    public static void ConfigureTorch(ParseResult parse) => TorchRuntime.ConfigureThreads(parse.GetValue(Threads));

    /// <summary>Parses and runs; turns the project's errors into one line on stderr and exit code 2.</summary>
    public static int Run(RootCommand root, string[] args)
    {
        var parse = root.Parse(args);
        bool verbose = parse.GetValue(Verbose);
        try
        {
            return parse.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (Exception e) when (!verbose && Unwrap(e) is MmxException or IOException or UnauthorizedAccessException or InvalidDataException
            or MMedExpert.Algebra.Rewards.GuidelineSpecException)
        {
            Console.Error.WriteLine($"error: {Unwrap(e).Message}");
            return 2;
        }
        catch (Exception e) when (!verbose)
        {
            var inner = Unwrap(e);
            Console.Error.WriteLine($"error: {inner.GetType().Name}: {inner.Message} (rerun with --verbose for the stack trace)");
            return 1;
        }
    }

    static Exception Unwrap(Exception e) =>
        e is System.Reflection.TargetInvocationException or AggregateException or TypeInitializationException && e.InnerException != null
            ? Unwrap(e.InnerException) : e;

    public static void WriteJson(object value) => Console.WriteLine(JsonSerializer.Serialize(value, Json));
}
