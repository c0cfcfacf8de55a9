module MMedExpert.Tests.SafetensorsTests

open System
open System.IO
open System.Text
open Expecto
open TorchSharp
open MMedExpert.Core.IO
open MMedExpert.Tests.TestKit

type private KeyValuePair = System.Collections.Generic.KeyValuePair

let private save (path: string) (tensors: (string * torch.Tensor) list) =
    Safetensors.Save(path, tensors |> List.map (fun (n, t) -> Collections.Generic.KeyValuePair(n, t)))

/// A file written byte by byte: 8-byte header length, the header text, then the data bytes.
let private rawFile (path: string) (header: string) (data: byte[]) =
    let h = Encoding.UTF8.GetBytes header
    use s = File.Create path
    s.Write(BitConverter.GetBytes(uint64 h.Length), 0, 8)
    s.Write(h, 0, h.Length)
    s.Write(data, 0, data.Length)

let private expectError (path: string) (fragment: string) =
    let e = Expect.throwsT<SafetensorsException> (fun () -> (SafetensorsFile.Open path).Dispose())
    ()

let private errorOf (f: unit -> unit) =
    try f (); failwith "expected a SafetensorsException"
    with :? SafetensorsException as e -> e.Message

let private allDTypes () =
    [ "f64", torch.randn(3L, 4L, dtype = torch.float64)
      "f32", torch.randn(5L, dtype = torch.float32)
      "f16", torch.randn(2L, 3L, dtype = torch.float16)
      "bf16", torch.randn(4L, 2L, dtype = torch.bfloat16)
      "i64", torch.tensor([| Int64.MinValue; 0L; Int64.MaxValue |])
      "i32", torch.tensor([| Int32.MinValue; -1; Int32.MaxValue |])
      "i16", torch.tensor([| Int16.MinValue; 7s; Int16.MaxValue |])
      "i8", torch.tensor([| -128y; 0y; 127y |])
      "u8", torch.tensor([| 0uy; 128uy; 255uy |])
      "bool", torch.tensor([| true; false; true |])
      "scalar", torch.tensor(3.5f)
      "empty", torch.zeros(0L, 4L) ]

[<Tests>]
let tests =
    testList "Safetensors" [
        test "round trip of every dtype, through the memory map and through a copy" {
            use dir = new TempDir()
            let path = dir.File "all.safetensors"
            let tensors = allDTypes ()
            Safetensors.Save(path, tensors |> List.map (fun (n, t) -> Collections.Generic.KeyValuePair(n, t)), readOnlyDict [ "format", "pt"; "note", "ü" ])
            for copy in [ false; true ] do
                use f = SafetensorsFile.Open path
                Expect.equal f.Metadata["note"] "ü" "metadata"
                for name, t in tensors do
                    use loaded = f.Load(name, copy = copy)
                    Expect.equal loaded.dtype t.dtype $"{name} dtype"
                    Expect.sequenceEqual loaded.shape t.shape $"{name} shape"
                    Expect.isTrue (sameTensor loaded t) $"{name} values (copy={copy})"
        }

        test "fp8 tensors (E4M3, E5M2) load as float32 with the format's values" {
            use dir = new TempDir()
            let path = dir.File "f8.safetensors"
            // E4M3: 0x38 = 1.0, 0xC0 = -2.0, 0x01 = 2^-9 (smallest subnormal), 0x7F = NaN.
            // E5M2: 0x3C = 1.0, 0x7C = +inf, 0xC2 = -3.0.
            rawFile path """{"a":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"F8_E5M2","shape":[3],"data_offsets":[4,7]}}"""
                [| 0x38uy; 0xC0uy; 0x01uy; 0x7Fuy; 0x3Cuy; 0x7Cuy; 0xC2uy |]
            use f = SafetensorsFile.Open path
            let a = f.Load("a").data<float32>().ToArray()
            Expect.equal a[0..2] [| 1.0f; -2.0f; 0.001953125f |] "E4M3 values"
            Expect.isTrue (Single.IsNaN a[3]) "E4M3 NaN"
            Expect.equal (f.Load("b").data<float32>().ToArray()) [| 1.0f; Single.PositiveInfinity; -3.0f |] "E5M2 values"
        }

        test "a tensor loaded from the map outlives the file object, and writing to it never reaches the file" {
            use dir = new TempDir()
            let path = dir.File "cow.safetensors"
            save path [ "w", torch.arange(8L, dtype = torch.float32) ]
            let before = File.ReadAllBytes path
            let t =
                use f = SafetensorsFile.Open path
                f.Load "w"
            t.add_(torch.tensor 100.0f) |> ignore
            Expect.equal (t.data<float32>().ToArray()[0]) 100.0f "tensor changed"
            t.Dispose()
            Expect.equal (File.ReadAllBytes path) before "file unchanged"
        }

        test "one named tensor loads without the others; unknown names are errors naming the tensor" {
            use dir = new TempDir()
            let path = dir.File "m.safetensors"
            save path [ "a", torch.ones(2L); "b", torch.zeros(3L) ]
            use f = SafetensorsFile.Open path
            Expect.isTrue (sameTensor (f.Load "b") (torch.zeros(3L))) "b"
            let msg = errorOf (fun () -> f.Load "zzz" |> ignore)
            Expect.stringContains msg "zzz" "names the tensor"
        }

        test "sharded index round trip" {
            use dir = new TempDir()
            let tensors = [ for i in 0..9 -> KeyValuePair.Create($"model.layers.{i}.w", torch.randn(64L, 64L)) ]
            Checkpoint.Save(dir.Path, ResizeArray tensors, maxShardBytes = 40_000L)
            Expect.isTrue (File.Exists(dir.File Checkpoint.IndexFileName)) "index written"
            let shards = Directory.GetFiles(dir.Path, "model-*-of-*.safetensors")
            Expect.isGreaterThan shards.Length 1 "several shards"
            for source in [ dir.Path; dir.File Checkpoint.IndexFileName ] do
                use c = Checkpoint.Open source
                Expect.equal (Seq.length c.Names) 10 "all names"
                for kv in tensors do Expect.isTrue (sameTensor (c.Load kv.Key) kv.Value) kv.Key
        }

        test "an index naming a missing shard or a tensor that is not in its shard is an error naming the index" {
            use dir = new TempDir()
            save (dir.File "a.safetensors") [ "x", torch.ones(2L) ]
            File.WriteAllText(dir.File "i.json", """{"weight_map":{"x":"a.safetensors","y":"a.safetensors"}}""")
            Expect.stringContains (errorOf (fun () -> (Checkpoint.Open(dir.File "i.json")).Dispose())) "'y'" "missing tensor named"
            File.WriteAllText(dir.File "j.json", """{"weight_map":{"x":"b.safetensors"}}""")
            Expect.stringContains (errorOf (fun () -> (Checkpoint.Open(dir.File "j.json")).Dispose())) "b.safetensors" "missing shard named"
        }

        testList "validation" [
            let cases =
                [ "truncated before the header length", (fun p -> File.WriteAllBytes(p, [| 1uy; 2uy |])), "truncated"
                  "header length out of bounds", (fun p -> File.WriteAllBytes(p, Array.append (BitConverter.GetBytes 1000UL) (Encoding.UTF8.GetBytes "{}"))), "out of bounds"
                  "invalid JSON", (fun p -> rawFile p "{\"a\": [" [||]), "invalid JSON"
                  "unknown dtype", (fun p -> rawFile p """{"a":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}}""" (Array.zeroCreate 16)), "unknown dtype"
                  "shape × dtype ≠ byte span", (fun p -> rawFile p """{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}""" (Array.zeroCreate 8)), "span"
                  "offsets out of range (truncated data)", (fun p -> rawFile p """{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}""" (Array.zeroCreate 10)), "out of range"
                  "overlapping offsets", (fun p -> rawFile p """{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}""" (Array.zeroCreate 12)), "overlap"
                  "hole between tensors", (fun p -> rawFile p """{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}""" (Array.zeroCreate 12)), "hole"
                  "trailing bytes", (fun p -> rawFile p """{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""" (Array.zeroCreate 9)), "not covered"
                  "duplicate names", (fun p -> rawFile p """{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}""" (Array.zeroCreate 2)), "duplicate"
                  "begin after end", (fun p -> rawFile p """{"a":{"dtype":"U8","shape":[0],"data_offsets":[2,1]}}""" (Array.zeroCreate 2)), "begin <= end"
                  "unknown entry field", (fun p -> rawFile p """{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"extra":1}}""" (Array.zeroCreate 1)), "unknown field"
                  "non-string metadata", (fun p -> rawFile p """{"__metadata__":{"k":1}}""" [||]), "__metadata__" ]
            for name, write, fragment in cases ->
                test name {
                    use dir = new TempDir()
                    let path = dir.File "bad.safetensors"
                    write path
                    let msg = errorOf (fun () -> (SafetensorsFile.Open path).Dispose())
                    Expect.stringContains msg path "names the file"
                    Expect.stringContains msg fragment "says what is wrong"
                }
        ]

        test "fuzz: 1,200 mutated or truncated files end in SafetensorsException or a valid load" {
            use dir = new TempDir()
            let good = dir.File "good.safetensors"
            save good [ "a", torch.randn(4L, 3L); "b", torch.tensor([| 1L; 2L |]); "c", torch.ones(2L, dtype = torch.bfloat16) ]
            let original = File.ReadAllBytes good
            let headerEnd = 8 + int (BitConverter.ToUInt64(original, 0))
            let rng = Random 1234
            let mutable errors, loads = 0, 0
            for i in 1..1200 do
                let bytes =
                    match i % 4 with
                    | 0 -> original[.. rng.Next(original.Length) - 1] // truncation
                    | 1 -> // flip bytes in the header
                        let b = Array.copy original
                        for _ in 1 .. 1 + rng.Next 3 do b[rng.Next headerEnd] <- byte (rng.Next 256)
                        b
                    | 2 -> // replace a header character with a JSON-significant one
                        let b = Array.copy original
                        b[8 + rng.Next(headerEnd - 8)] <- "{}[]\",:0123456789-e"B[rng.Next 19]
                        b
                    | _ -> // corrupt the length field or append junk
                        let b = Array.copy original
                        if rng.Next 2 = 0 then b[rng.Next 8] <- byte (rng.Next 256); b
                        else Array.append b (Array.init (1 + rng.Next 16) (fun _ -> byte (rng.Next 256)))
                let path = dir.File $"f{i}.safetensors"
                File.WriteAllBytes(path, bytes)
                try
                    use f = SafetensorsFile.Open path
                    for e in f.Entries do (f.Load e.Name).Dispose()
                    loads <- loads + 1
                with :? SafetensorsException -> errors <- errors + 1
                File.Delete path
            Expect.equal (errors + loads) 1200 "every file ends in an error or a load"
            Expect.isGreaterThan errors 900 "most mutations are detected"
        }

        test "writing is atomic: a failing save leaves no file and no temp file" {
            use dir = new TempDir()
            let path = dir.File "x.safetensors"
            let bad = [ KeyValuePair.Create("a", torch.ones(2L)); KeyValuePair.Create("a", torch.ones(2L)) ]
            Expect.throwsT<SafetensorsException> (fun () -> Safetensors.Save(path, (bad: Collections.Generic.KeyValuePair<string, torch.Tensor> list))) |> ignore
            Expect.isEmpty (Directory.GetFiles dir.Path) "nothing written"
        }

        test "mmx inspect lists tensors and totals; --json is one object; a truncated file exits non-zero naming the file" {
            use dir = new TempDir()
            let path = dir.File "m.safetensors"
            save path [ "w", torch.ones(2L, 3L); "b", torch.ones(3L, dtype = torch.bfloat16) ]
            let code, out, _ = runMmx [ "inspect"; path ]
            Expect.equal code 0 "exit 0"
            Expect.stringContains out "w     F32     [2, 3]  24 bytes" "a line per tensor"
            Expect.stringContains out "total: 2 tensors, 9 parameters, 30 bytes" "totals"
            let code, out, _ = runMmx [ "inspect"; path; "--json" ]
            Expect.equal code 0 "json exit 0"
            let doc = Text.Json.JsonDocument.Parse out
            Expect.equal (doc.RootElement.GetProperty("total_bytes").GetInt64()) 30L "json totals"
            let bytes = File.ReadAllBytes path
            File.WriteAllBytes(path, bytes[.. bytes.Length - 5])
            let code, _, err = runMmx [ "inspect"; path ]
            Expect.notEqual code 0 "non-zero exit"
            Expect.stringContains err path "names the file"
            Expect.isFalse (err.Contains "   at ") "no stack trace"
        }
    ]
