module MMedExpert.Tests.Main

open Expecto
open Expecto.Impl

/// Keeps Expecto's own summary and remembers the counts for the plain line CI reads.
let mutable private counts = (0, 0, 0)

let private rememberingCounts (printer: TestPrinters) =
    { printer with
        summary =
            fun config summary ->
                counts <- (summary.passed.Length, summary.failed.Length + summary.errored.Length, summary.ignored.Length)
                printer.summary config summary }

[<EntryPoint>]
let main argv =
    MMedExpert.Core.Runtime.TorchRuntime.ConfigureThreads() |> ignore
    let code = runTestsInAssemblyWithCLIArgs [ CLIArguments.Printer(rememberingCounts defaultConfig.printer); CLIArguments.No_Spinner ] argv
    let passed, failed, skipped = counts
    let tail = if skipped > 0 then sprintf ", %d skipped" skipped else ""
    System.Console.Out.Flush()
    // Written to the raw stdout stream, after a newline: Expecto's console writer pads and colours its own lines.
    use raw = new System.IO.StreamWriter(System.Console.OpenStandardOutput())
    raw.Write(sprintf "\ntests: %d passed, %d failed%s\n" passed failed tail)
    code
