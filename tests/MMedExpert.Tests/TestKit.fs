/// Helpers shared by the test files: temporary folders, running `mmx` in-process, locating ../shared.
module MMedExpert.Tests.TestKit

open System
open System.IO

/// A temporary folder deleted on Dispose.
type TempDir() =
    let path = Directory.CreateTempSubdirectory("mmx-test-").FullName
    member _.Path = path
    member _.File(name: string) = Path.Combine(path, name)
    interface IDisposable with
        member _.Dispose() = try Directory.Delete(path, true) with _ -> ()

let private consoleLock = obj ()

/// Runs `mmx args` in-process and returns (exit code, stdout, stderr).
let runMmx (args: string list) =
    lock consoleLock (fun () ->
        let out, err = Console.Out, Console.Error
        use o = new StringWriter()
        use e = new StringWriter()
        Console.SetOut o
        Console.SetError e
        try
            let code = MMedExpert.Cli.MmxApp.Run(Array.ofList args)
            code, o.ToString(), e.ToString()
        finally
            Console.SetOut out
            Console.SetError err)

/// The repository root (the folder holding MMedExpert.sln), found upwards from the test binary.
let repoRoot =
    let rec up (d: DirectoryInfo) =
        if isNull d then failwith "repository root not found"
        elif File.Exists(Path.Combine(d.FullName, "MMedExpert.sln")) then d.FullName
        else up d.Parent
    up (DirectoryInfo AppContext.BaseDirectory)

/// `../shared` beside the repository (MMX_SHARED overrides); None when absent, so tests can skip cleanly.
let sharedDir =
    let candidate =
        match Environment.GetEnvironmentVariable "MMX_SHARED" with
        | null | "" -> Path.Combine(repoRoot, "..", "shared")
        | p -> p
    if Directory.Exists candidate then Some(Path.GetFullPath candidate) else None

/// A committed fixture under tests/fixtures.
let fixture (relative: string) = Path.Combine(repoRoot, "tests", "fixtures", relative)

/// Same shape and same values (exact).
let sameTensor (a: TorchSharp.torch.Tensor) (b: TorchSharp.torch.Tensor) =
    a.shape = b.shape && a.dtype = b.dtype && a.eq(b).all().item<bool>()

/// The item as if it came from another data set (a specialty MedSynth has no scenario for).
let otherSpecialty (i: MMedExpert.Data.Schema.MedItem) =
    MMedExpert.Data.Schema.MedItem(i.Id, "dermatology", i.Images, i.Question, i.Options, i.Answer, i.Reasoning, i.Perspective, i.Guideline, i.Split)
