// The project's assemblies for F# scripts. A script in scripts/ starts with `#load "References.fsx"` and runs with
// `dotnet fsi scripts/NAME.fsx`. The assemblies come from the CLI's Release build, which holds every project assembly,
// TorchSharp with its patched native library (see README, "TorchSharp on Debian 12") and Plotly.NET.
//
// If a #r line below fails with "error FS0078: Unable to find the file", the CLI is not built yet:
// run `./mmx --help` once (it builds in Release), then rerun the script.
#r "../src/MMedExpert.Cli/bin/Release/net10.0/TorchSharp.dll"
#r "../src/MMedExpert.Cli/bin/Release/net10.0/MMedExpert.Algebra.dll"
#r "../src/MMedExpert.Cli/bin/Release/net10.0/MMedExpert.Core.dll"
#r "../src/MMedExpert.Cli/bin/Release/net10.0/MMedExpert.Data.dll"
#r "../src/MMedExpert.Cli/bin/Release/net10.0/mmx.dll"

/// The repository root (the folder above scripts/).
let repoRoot = System.IO.Path.GetFullPath(System.IO.Path.Combine(__SOURCE_DIRECTORY__, ".."))

/// The script's command-line arguments (after the script's own path).
let scriptArgs = fsi.CommandLineArgs |> Array.skip 1
