module MMedExpert.Tests.NativeLoadTests

open System.IO
open Expecto
open TorchSharp
open MMedExpert.Core.Native
open MMedExpert.Tests.TestKit

let private nativeDir = Path.Combine(System.AppContext.BaseDirectory, "runtimes", "linux-x64", "native")
let private libTorchSharp = Path.Combine(nativeDir, "libLibTorchSharp.so")
let private systemHasVersion () =
    match ElfWeakVersion.FindSystemLibStdCxx() with
    | null -> false
    | lib -> ElfWeakVersion.LibraryDefinesVersion(lib, "GLIBCXX_3.4.32")

[<Tests>]
let tests =
    testList "NativeLoad" [
        test "a real tensor op runs (TorchSharp native library loads)" {
            use a = torch.arange(6L, dtype = torch.float32).reshape(2L, 3L)
            use b = torch.ones(3L, 2L)
            use c = a.matmul(b)
            Expect.sequenceEqual (c.data<float32>().ToArray()) [| 3.0f; 3.0f; 12.0f; 12.0f |] "matmul result"
        }

        test "mmx and the test host run with blocking GC (TorchSharp's temporary Scalars vs background GC)" {
            // A background GC can finalize a temporary Scalar that TorchSharp passed to native code (e.g. the alpha of
            // a + b) while the operation still reads it; seen as "Expected false to be true ... toFloat" mid-training.
            // Batch is the latency mode of a runtime whose concurrent (background) GC is off.
            Expect.equal System.Runtime.GCSettings.LatencyMode System.Runtime.GCLatencyMode.Batch "test host: concurrent GC off"
            let config = Path.Combine(repoRoot, "src", "MMedExpert.Cli", "bin", "Release", "net10.0", "mmx.runtimeconfig.json")
            if File.Exists config then
                let json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText config)
                let concurrent = json.["runtimeOptions"].["configProperties"].["System.GC.Concurrent"].GetValue<bool>()
                Expect.isFalse concurrent "mmx runtimeconfig"
        }

        test "the build marked GLIBCXX_3.4.32 weak in the output copy, or the system provides it" {
            if not (File.Exists libTorchSharp) then skiptest "not a linux-x64 build"
            let need = ElfWeakVersion.ReadVersionNeeds(libTorchSharp) |> Seq.tryFind (fun n -> n.Version = "GLIBCXX_3.4.32")
            match need with
            | None -> ()
            | Some n -> Expect.isTrue (n.IsWeak || systemHasVersion ()) "GLIBCXX_3.4.32 must be weak where the system lacks it"
        }

        test "patching is idempotent, touches only the flag, and leaves the source untouched" {
            if not (File.Exists libTorchSharp) then skiptest "not a linux-x64 build"
            let dir = Directory.CreateTempSubdirectory("mmx-elf").FullName
            try
                let copy = Path.Combine(dir, "lib.so")
                File.Copy(libTorchSharp, copy)
                // Undo the build's patch on the copy, to patch it from scratch.
                let need = ElfWeakVersion.ReadVersionNeeds(copy) |> Seq.find (fun n -> n.Version = "GLIBCXX_3.4.32")
                let bytes = File.ReadAllBytes copy
                bytes[int need.FlagsOffset] <- bytes[int need.FlagsOffset] &&& ~~~0x2uy
                File.WriteAllBytes(copy, bytes)
                let before = File.ReadAllBytes copy
                Expect.equal (ElfWeakVersion.MarkWeak(copy, "GLIBCXX_3.4.32")) ElfPatchOutcome.Patched "first patch"
                Expect.equal (ElfWeakVersion.MarkWeak(copy, "GLIBCXX_3.4.32")) ElfPatchOutcome.AlreadyWeak "second patch"
                Expect.equal (ElfWeakVersion.MarkWeak(copy, "GLIBCXX_9.9.9")) ElfPatchOutcome.NotRequired "absent version"
                let after = File.ReadAllBytes copy
                let diffs = Array.zip before after |> Array.indexed |> Array.filter (fun (_, (x, y)) -> x <> y) |> Array.map fst
                Expect.equal diffs [| int need.FlagsOffset |] "only the flags byte changes"
                Expect.isTrue (ElfWeakVersion.ReadVersionNeeds(copy) |> Seq.exists (fun n -> n.Version = "GLIBCXX_3.4.32" && n.IsWeak)) "weak now"
            finally Directory.Delete(dir, true)
        }

        test "a non-ELF file is rejected with its name" {
            let f = Path.GetTempFileName()
            try
                File.WriteAllText(f, "not an elf")
                let e = Expect.throwsT<InvalidDataException> (fun () -> ElfWeakVersion.ReadVersionNeeds f |> ignore)
                ()
            finally File.Delete f
        }
    ]
