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

open System
open System.IO
open System.Runtime.InteropServices

/// The repository root (the folder above scripts/).
let repoRoot = Path.GetFullPath(Path.Combine(__SOURCE_DIRECTORY__, ".."))

/// The script's command-line arguments (after the script's own path).
let scriptArgs = fsi.CommandLineArgs |> Array.skip 1

/// The build's native folder: the patched libLibTorchSharp.so and libtorch beside it.
let nativeDir = Path.Combine(repoRoot, "src", "MMedExpert.Cli", "bin", "Release", "net10.0", "runtimes", "linux-x64", "native")

// dotnet fsi does not read mmx.deps.json, so TorchSharp would not look in runtimes/linux-x64/native/ and would fall back
// to copying libtorch (~0.5 GB) out of the NuGet cache next to TorchSharp.dll, unpatched, which fails on Debian 12.
// Loading the patched copy first makes TorchSharp's own lookup by name find it (same soname); libtorch follows through
// the library's $ORIGIN runpath.
if OperatingSystem.IsLinux() then
    let torchSharp = Path.Combine(nativeDir, "libLibTorchSharp.so")
    if not (File.Exists torchSharp) then
        failwithf "%s: missing; build the CLI in Release once with ./mmx --help" torchSharp
    NativeLibrary.Load torchSharp |> ignore
