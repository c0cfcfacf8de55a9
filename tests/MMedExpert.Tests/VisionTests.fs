module MMedExpert.Tests.VisionTests

open System
open System.IO
open System.Text.Json
open Expecto
open TorchSharp
open MMedExpert.Core
open MMedExpert.Core.Model
open MMedExpert.Core.Model.Vision
open MMedExpert.Core.Vision

// ---------------------------------------------------------------------------------------------------------------
// Helpers

/// Runs f, expects an exception of type 'E whose message contains every fragment.
let private throwsWith<'E when 'E :> exn> (fragments: string list) (f: unit -> unit) =
    let message =
        try
            f ()
            failtest $"expected {typeof<'E>.Name}, nothing was thrown"
            ""
        with
        | :? 'E as e -> e.Message
        | e when not (e :? AssertException) -> failtest $"expected {typeof<'E>.Name}, got {e.GetType().Name}: {e.Message}"
    for fragment in fragments do
        Expect.stringContains message fragment "the error message names the input"

let private fixtureDir = lazy (TestKit.fixture "preprocess")

type private FixtureCase =
    { File: string; MinPixels: int64; MaxPixels: int64; Height: int; Width: int
      ResizedHeight: int; ResizedWidth: int; Grid: int64[]; Rows: int
      RowOffset: int; ResizedOffset: int; DecodedOffset: int }

let private fixture =
    lazy
        (let dir = fixtureDir.Force()
         use doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "fixture.json")))
         let root = doc.RootElement
         let cases =
             [ for c in root.GetProperty("cases").EnumerateArray() ->
                 { File = c.GetProperty("file").GetString()
                   MinPixels = c.GetProperty("min_pixels").GetInt64()
                   MaxPixels = c.GetProperty("max_pixels").GetInt64()
                   Height = c.GetProperty("height").GetInt32()
                   Width = c.GetProperty("width").GetInt32()
                   ResizedHeight = c.GetProperty("resized_height").GetInt32()
                   ResizedWidth = c.GetProperty("resized_width").GetInt32()
                   Grid = [| for g in c.GetProperty("grid_thw").EnumerateArray() -> g.GetInt64() |]
                   Rows = c.GetProperty("rows").GetInt32()
                   RowOffset = c.GetProperty("row_offset").GetInt32()
                   ResizedOffset = c.GetProperty("resized_offset").GetInt32()
                   DecodedOffset = c.GetProperty("decoded_offset").GetInt32() } ]
         let bytes name = File.ReadAllBytes(Path.Combine(dir, name))
         let pixelBytes = bytes "pixel_values.f32"
         let pixels = Array.init (pixelBytes.Length / 4) (fun i -> BitConverter.ToSingle(pixelBytes, 4 * i))
         dir, cases, pixels, bytes "resized.u8", bytes "decoded.u8")

let private processorFor (c: FixtureCase) =
    ImageProcessor(ImageProcessorConfig(MinPixels = c.MinPixels, MaxPixels = c.MaxPixels))

let private maxAbs (a: float32[]) (b: float32[]) =
    Array.fold2 (fun m (x: float32) (y: float32) -> max m (abs (float x - float y))) 0.0 a b

let private floats (t: torch.Tensor) = t.contiguous().data<float32>().ToArray()

// ---------------------------------------------------------------------------------------------------------------
// A naive reference of the tower, written from the description of the architecture and independent of the
// implementation: no window reordering, attention restricted by an explicit mask built from each patch's window.

let private referenceTower (config: VisionConfig) (state: Collections.Generic.IDictionary<string, torch.Tensor>) (pixels: torch.Tensor) (grid: int64[][]) =
    use scope = torch.NewDisposeScope()
    let w (name: string) = state[name]
    let hidden, heads = int64 config.HiddenSize, int64 config.NumHeads
    let headDim = hidden / heads
    let m = int64 config.SpatialMergeSize
    let windowTokens = int64 (config.WindowSize / config.SpatialMergeSize / config.PatchSize)
    // Per patch, in the processor's order: its image, row, column, and window on the merged-token grid.
    let patches =
        [| for img, g in Array.indexed grid do
             let gh, gw = g[1], g[2]
             for frame in 0L .. g[0] - 1L do
                 for u in 0L .. gh / m * (gw / m) - 1L do
                     for sub in 0L .. m * m - 1L do
                         let br, bc = u / (gw / m), u % (gw / m)
                         yield (img, frame), br * m + sub / m, bc * m + sub % m, (br / windowTokens, bc / windowTokens) |]
    let n = int64 patches.Length
    let sameImage = Array2D.init (int n) (int n) (fun a b -> let (i, _, _, _), (j, _, _, _) = patches[a], patches[b] in i = j)
    let sameWindow = Array2D.init (int n) (int n) (fun a b -> let (i, _, _, wa), (j, _, _, wb) = patches[a], patches[b] in i = j && wa = wb)
    let maskOf (allowed: bool[,]) =
        let flat = Array.init (int (n * n)) (fun k -> if allowed[k / int n, k % int n] then 0.0f else Single.NegativeInfinity)
        torch.tensor(flat).view(n, n)
    let imageMask, windowMask = maskOf sameImage, maskOf sameWindow
    let rotaryDim = headDim / 2L
    let invFreq = 1.0f / torch.pow(torch.tensor 10000.0f, torch.arange(0L, rotaryDim, 2L, dtype = torch.ScalarType.Float32) / float32 rotaryDim)
    let rows = torch.tensor([| for (_, r, _, _) in patches -> float32 r |])
    let cols = torch.tensor([| for (_, _, c, _) in patches -> float32 c |])
    let angles = torch.cat([| torch.outer(rows, invFreq); torch.outer(cols, invFreq) |], 1L)
    let emb = torch.cat([| angles; angles |], 1L)
    let cos, sin = emb.cos().unsqueeze(1L), emb.sin().unsqueeze(1L)
    let rotate (x: torch.Tensor) =
        let half = headDim / 2L
        torch.cat([| x.narrow(-1L, half, half).neg(); x.narrow(-1L, 0L, half) |], -1L)
    let rms (x: torch.Tensor) (weight: torch.Tensor) = x * torch.rsqrt((x * x).mean([| -1L |], keepdim = true) + 1e-6) * weight
    let linear (x: torch.Tensor) (name: string) = torch.nn.functional.linear(x, w (name + ".weight"), w (name + ".bias"))

    let mutable x = pixels.matmul(w("patch_embed.proj.weight").view(hidden, -1L).t())
    for i in 0 .. config.Depth - 1 do
        let p = $"blocks.{i}."
        let mask = if Seq.contains i config.FullAttentionBlockIndexes then imageMask else windowMask
        let qkv = linear (rms x (w (p + "norm1.weight"))) (p + "attn.qkv")
        let split k = qkv.narrow(1L, k * hidden, hidden).view(n, heads, headDim)
        let q = split 0L * cos + rotate (split 0L) * sin
        let k = split 1L * cos + rotate (split 1L) * sin
        let v = split 2L
        let scores = torch.einsum("nhd,mhd->hnm", q, k) / Math.Sqrt(float headDim) + mask
        let attended = torch.einsum("hnm,mhd->nhd", scores.softmax(-1L), v).reshape(n, hidden)
        x <- x + linear attended (p + "attn.proj")
        let y = rms x (w (p + "norm2.weight"))
        let gate = linear y (p + "mlp.gate_proj")
        x <- x + linear (torch.nn.functional.silu(gate) * linear y (p + "mlp.up_proj")) (p + "mlp.down_proj")
    let merged = (rms x (w "merger.ln_q.weight")).view(n / (m * m), -1L)
    let out = linear (torch.nn.functional.gelu(linear merged "merger.mlp.0")) "merger.mlp.2"
    out.MoveToOuterDisposeScope()

/// Random weights with visible norms and biases (ones and zeros would hide a mix-up of those tensors).
let private randomTower (config: VisionConfig) (seed: int64) =
    torch.manual_seed seed |> ignore
    let model = new Qwen25VisionTransformer("visual", config)
    use _ = torch.no_grad()
    for KeyValue(name, p) in model.state_dict() do
        if name.EndsWith "norm1.weight" || name.EndsWith "norm2.weight" || name.EndsWith "ln_q.weight" then
            p.copy_(torch.rand(p.shape) + 0.5f) |> ignore
        elif name.EndsWith ".bias" then
            p.copy_(torch.randn(p.shape) * 0.1f) |> ignore
    model.eval()
    model

let private copyWeights (src: Qwen25VisionTransformer) (dst: Qwen25VisionTransformer) =
    use _ = torch.no_grad()
    let target = dst.state_dict()
    for KeyValue(name, p) in src.state_dict() do target[name].copy_(p) |> ignore

let private randomPixels (grid: int64[][]) (seed: int64) =
    torch.manual_seed seed |> ignore
    let n = grid |> Array.sumBy (fun g -> g[0] * g[1] * g[2])
    torch.randn(n, 1176L)

let private gridTensor (grid: int64[][]) = torch.tensor(Array.concat grid).view(int64 grid.Length, 3L)

let private run (model: Qwen25VisionTransformer) (pixels: torch.Tensor) (grid: int64[][]) =
    use _ = torch.no_grad()
    model.forward(pixels, gridTensor grid)

// ---------------------------------------------------------------------------------------------------------------

[<Tests>]
let tests =
    testList "Vision" [
        testList "preprocessing" [
            test "Pillow-exact bicubic: resizing Pillow's decoded pixels reproduces Pillow's resized uint8 image" {
                let _, cases, _, resized, decoded = fixture.Force()
                for c in cases do
                    let n = c.Height * c.Width * 3
                    let image = RgbImage(c.Width, c.Height, decoded[c.DecodedOffset .. c.DecodedOffset + n - 1], c.File)
                    let ours = (processorFor c).Resize(image)
                    Expect.equal (ours.Height, ours.Width) (c.ResizedHeight, c.ResizedWidth) $"{c.File}: resized size"
                    let expected = resized[c.ResizedOffset .. c.ResizedOffset + c.ResizedHeight * c.ResizedWidth * 3 - 1]
                    let diff = Array.fold2 (fun m (a: byte) (b: byte) -> max m (abs (int a - int b))) 0 ours.Pixels expected
                    Expect.equal diff 0 $"{c.File}: max uint8 difference to Pillow"
            }

            test "pixel_values and image_grid_thw from the image files match the Pillow fixture" {
                let dir, cases, pixels, _, decoded = fixture.Force()
                for c in cases do
                    use processed = (processorFor c).Process([| Path.Combine(dir, c.File) |])
                    Expect.equal processed.GridThw[0] c.Grid $"{c.File}: image_grid_thw"
                    Expect.equal processed.TokenCounts[0] (int (c.Grid[0] * c.Grid[1] * c.Grid[2] / 4L)) $"{c.File}: tokens"
                    Expect.sequenceEqual processed.PixelValues.shape [| int64 c.Rows; 1176L |] $"{c.File}: shape"
                    let expected = pixels[c.RowOffset * 1176 .. (c.RowOffset + c.Rows) * 1176 - 1]
                    let diff = maxAbs (floats processed.PixelValues) expected
                    // How much of it comes from decoding: our decoded pixels against Pillow's.
                    let ours = ImageDecoder.Load(Path.Combine(dir, c.File))
                    let pillow = decoded[c.DecodedOffset .. c.DecodedOffset + c.Height * c.Width * 3 - 1]
                    let decodeDiff = Array.fold2 (fun m (a: byte) (b: byte) -> max m (abs (int a - int b))) 0 ours.Pixels pillow
                    printfn "Vision parity %-26s decode max |Δ| = %d uint8 levels, pixel_values max |Δ| = %.3g" c.File decodeDiff diff
                    // PNG decodes identically, so the whole pipeline is exact; JPEG decoders (stb_image vs libjpeg)
                    // differ by a few uint8 levels, about 0.015 each after normalization.
                    if c.File.EndsWith ".png" then
                        Expect.equal decodeDiff 0 $"{c.File}: PNG decodes as Pillow does"
                        Expect.isLessThanOrEqual diff 1e-6 $"{c.File}: max abs difference to the fixture"
                    else
                        Expect.isLessThanOrEqual decodeDiff 3 $"{c.File}: JPEG decode difference in uint8 levels"
                        Expect.isLessThanOrEqual diff 0.06 $"{c.File}: max abs difference to the fixture"
            }

            test "several images concatenate image after image with one grid and token count each" {
                let dir, cases, pixels, _, _ = fixture.Force()
                let pngs = cases |> List.filter (fun c -> c.File.EndsWith ".png" && c.MaxPixels = 28L * 28L * 16384L)
                use processed = ImageProcessor().Process([| for c in pngs -> Path.Combine(dir, c.File) |])
                Expect.equal processed.GridThw [| for c in pngs -> c.Grid |] "grids in order"
                let expected = [| for c in pngs do yield! pixels[c.RowOffset * 1176 .. (c.RowOffset + c.Rows) * 1176 - 1] |]
                Expect.isLessThanOrEqual (maxAbs (floats processed.PixelValues) expected) 1e-6 "concatenated rows"
                use gridT = processed.GridThwTensor()
                Expect.sequenceEqual (gridT.data<int64>().ToArray()) (Array.concat processed.GridThw) "grid tensor"
            }

            test "image_grid_thw and token counts for sizes and aspect ratios (hand-computed)" {
                let p = ImageProcessor()
                // (height, width) -> grid, tokens; comments give the rounding that decides each case.
                let cases =
                    [ (224, 224), [| 1L; 16L; 16L |], 64       // exact multiples of 28
                      (100, 100), [| 1L; 8L; 8L |], 16         // 3.57 -> 4 · 28 = 112
                      (28, 28), [| 1L; 4L; 4L |], 4            // 784 < 3136: scaled up to 56 × 56
                      (10, 10), [| 1L; 4L; 4L |], 4            // tiny: up to min_pixels
                      (42, 70), [| 1L; 4L; 4L |], 4            // 1.5 -> 2 and 2.5 -> 2: halves round to even
                      (50, 1000), [| 1L; 4L; 72L |], 72        // wide: 56 × 1008
                      (20, 3000), [| 1L; 2L; 214L |], 107      // aspect 150: one factor high
                      (3000, 4000), [| 1L; 214L; 286L |], 15301 // 2996 × 4004 fits max_pixels
                      (4000, 6000), [| 1L; 208L; 312L |], 16224 ] // over max_pixels: floor(side/β) -> 2912 × 4368
                for (h, w), grid, tokens in cases do
                    Expect.equal (p.GridThw(h, w)) grid $"grid of {h}×{w}"
                    Expect.equal (p.TokenCount(h, w)) tokens $"tokens of {h}×{w}"
                let limited = ImageProcessor(ImageProcessorConfig(MaxPixels = 28L * 28L * 64L))
                Expect.equal (limited.GridThw(500, 300)) [| 1L; 20L; 12L |] "max_pixels 50176: 280 × 168"
                Expect.equal (SmartResize.Compute(500, 300, 28, 3136L, 50176L)) (struct (280, 168)) "smart resize"
            }

            test "an image that is not an image is rejected with its file name" {
                let f = Path.Combine(Path.GetTempPath(), $"mmx-not-an-image-{Guid.NewGuid():N}.png")
                File.WriteAllText(f, "not a png")
                try throwsWith<ImageProcessingException> [ f ] (fun () -> ImageDecoder.Load f |> ignore)
                finally File.Delete f
                throwsWith<ImageProcessingException> [ "missing.png" ] (fun () -> ImageDecoder.Load "missing.png" |> ignore)
            }

            test "an aspect ratio above 200 is rejected naming the image" {
                let image = RgbImage(404, 2, Array.zeroCreate (404 * 2 * 3), "strip.png")
                throwsWith<ImageProcessingException> [ "strip.png"; "aspect" ] (fun () -> ImageProcessor().Process([| image |]) |> ignore)
            }

            test "preprocessor_config.json: Qwen2.5-VL file, size keys, defaults, and bad values naming the key" {
                let parse (json: string) =
                    use doc = JsonDocument.Parse json
                    ImageProcessorConfig.FromJson(doc.RootElement, "pp.json")
                let qwen =
                    parse """{"min_pixels": 3136, "max_pixels": 12845056, "patch_size": 14, "temporal_patch_size": 2,
                              "merge_size": 2, "image_mean": [0.48145466, 0.4578275, 0.40821073],
                              "image_std": [0.26862954, 0.26130258, 0.27577711],
                              "image_processor_type": "Qwen2VLImageProcessor", "processor_class": "Qwen2_5_VLProcessor"}"""
                Expect.equal qwen.MaxPixels 12845056L "max_pixels"
                Expect.equal qwen.Resample ResampleFilter.Bicubic "bicubic by default"
                Expect.sequenceEqual qwen.IgnoredKeys [ "image_processor_type"; "processor_class" ] "ignored keys listed"
                let sized = parse """{"size": {"shortest_edge": 1000, "longest_edge": 20000}}"""
                Expect.equal (sized.MinPixels, sized.MaxPixels) (1000L, 20000L) "size keys"
                let both = parse """{"min_pixels": 5, "size": {"shortest_edge": 1000, "longest_edge": 20000}}"""
                Expect.equal both.MinPixels 5L "min_pixels wins over size"
                let fields (c: ImageProcessorConfig) =
                    c.MinPixels, c.MaxPixels, c.PatchSize, c.TemporalPatchSize, c.MergeSize, List.ofSeq c.ImageMean,
                    List.ofSeq c.ImageStd, c.DoResize, c.DoRescale, c.RescaleFactor, c.DoNormalize, c.Resample
                Expect.equal (fields (parse "{}")) (fields ImageProcessorConfig.Default) "empty file = defaults"
                Expect.equal (fields (parse (qwen.ToJson().ToJsonString()))) (fields qwen) "ToJson round trip"
                throwsWith<ImageProcessingException> [ "pp.json"; "resample" ] (fun () -> parse """{"resample": 1}""" |> ignore)
                throwsWith<ImageProcessingException> [ "pp.json"; "image_mean" ] (fun () -> parse """{"image_mean": [0.5, 0.5]}""" |> ignore)
                throwsWith<ImageProcessingException> [ "pp.json"; "max_pixels" ] (fun () -> parse """{"max_pixels": "big"}""" |> ignore)
            }
        ]

        testList "config" [
            test "vision_config of Qwen2.5-VL-7B reads to the 7B preset; unused keys are listed" {
                let json =
                    """{"depth": 32, "fullatt_block_indexes": [7, 15, 23, 31], "hidden_act": "silu", "hidden_size": 1280,
                        "in_channels": 3, "in_chans": 3, "initializer_range": 0.02, "intermediate_size": 3420,
                        "model_type": "qwen2_5_vl", "num_heads": 16, "out_hidden_size": 3584, "patch_size": 14,
                        "spatial_merge_size": 2, "spatial_patch_size": 14, "temporal_patch_size": 2,
                        "tokens_per_second": 2, "torch_dtype": "float32", "window_size": 112}"""
                use doc = JsonDocument.Parse json
                let c = VisionConfig.FromJson(doc.RootElement, "config.json: vision_config")
                let preset = VisionConfig.Qwen25VL7B
                Expect.equal (c.Depth, c.HiddenSize, c.IntermediateSize, c.NumHeads, c.OutHiddenSize)
                             (preset.Depth, preset.HiddenSize, preset.IntermediateSize, preset.NumHeads, preset.OutHiddenSize) "shape"
                Expect.sequenceEqual c.FullAttentionBlockIndexes preset.FullAttentionBlockIndexes "full-attention blocks"
                Expect.equal (c.PatchRowWidth, c.WindowMergedTokens, c.HeadDim) (1176, 4, 80) "derived sizes"
                Expect.sequenceEqual c.IgnoredKeys [ "model_type"; "torch_dtype" ] "ignored keys"
                Expect.equal VisionConfig.Qwen25VL3B.OutHiddenSize 2048 "3B merges into 2048"
                use back = JsonDocument.Parse(c.ToJson().ToJsonString())
                let again = VisionConfig.FromJson(back.RootElement)
                Expect.equal (again.Depth, again.OutHiddenSize, again.TokensPerSecond) (32, 3584, 2) "ToJson round trip"
            }

            test "a missing or malformed key is named in the error" {
                let parse (json: string) =
                    use doc = JsonDocument.Parse json
                    VisionConfig.FromJson(doc.RootElement, "cfg.json: vision_config") |> ignore
                let full = """ "depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": 16 """
                throwsWith<ModelConfigException> [ "cfg.json: vision_config"; "fullatt_block_indexes"; "missing" ] (fun () -> parse ("{" + full + "}"))
                throwsWith<ModelConfigException> [ "num_heads"; "missing" ] (fun () ->
                    parse """{"depth": 2, "hidden_size": 32, "intermediate_size": 64, "out_hidden_size": 16, "fullatt_block_indexes": [1]}""")
                throwsWith<ModelConfigException> [ "fullatt_block_indexes"; "5" ] (fun () -> parse ("{" + full + """, "fullatt_block_indexes": [5]}"""))
                throwsWith<ModelConfigException> [ "depth"; "integer" ] (fun () ->
                    parse """{"depth": "two", "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": 16, "fullatt_block_indexes": [1]}""")
                throwsWith<ModelConfigException> [ "hidden_act" ] (fun () -> parse ("{" + full + """, "fullatt_block_indexes": [1], "hidden_act": "quick_gelu"}"""))
                Expect.isTrue (typeof<MmxException>.IsAssignableFrom typeof<ModelConfigException>) "derives from MmxException"
            }
        ]

        testList "tower" [
            test "state dict names and shapes are the checkpoint's keys under visual." {
                let config = VisionConfig.Tiny 24
                use model = new Qwen25VisionTransformer("visual", config)
                let shapes = model.state_dict() |> Seq.map (fun kv -> kv.Key, List.ofArray kv.Value.shape) |> Map.ofSeq
                let h, i = 32L, 64L
                let expected =
                    [ yield "patch_embed.proj.weight", [ h; 3L; 2L; 14L; 14L ]
                      for b in 0 .. 3 do
                          let p = $"blocks.{b}."
                          yield p + "norm1.weight", [ h ]
                          yield p + "norm2.weight", [ h ]
                          yield p + "attn.qkv.weight", [ 3L * h; h ]
                          yield p + "attn.qkv.bias", [ 3L * h ]
                          yield p + "attn.proj.weight", [ h; h ]
                          yield p + "attn.proj.bias", [ h ]
                          yield p + "mlp.gate_proj.weight", [ i; h ]
                          yield p + "mlp.gate_proj.bias", [ i ]
                          yield p + "mlp.up_proj.weight", [ i; h ]
                          yield p + "mlp.up_proj.bias", [ i ]
                          yield p + "mlp.down_proj.weight", [ h; i ]
                          yield p + "mlp.down_proj.bias", [ h ]
                      yield "merger.ln_q.weight", [ h ]
                      yield "merger.mlp.0.weight", [ 4L * h; 4L * h ]
                      yield "merger.mlp.0.bias", [ 4L * h ]
                      yield "merger.mlp.2.weight", [ 24L; 4L * h ]
                      yield "merger.mlp.2.bias", [ 24L ] ]
                    |> Map.ofList
                Expect.equal shapes expected "names and shapes"
                Expect.equal (model.SpatialMergeSize, model.OutHiddenSize) (2, 24) "exposed sizes"
            }

            test "output is [N/4, out_hidden_size] and equals a naive masked-attention reference (no reordering)" {
                let config = VisionConfig.Tiny 24
                use model = randomTower config 1L
                // 12 × 20 patches = 6 × 10 merged tokens: windows of 4 × 4 with partial windows at the edges; plus a
                // second image so the reference also checks that no attention crosses images.
                let grid = [| [| 1L; 12L; 20L |]; [| 1L; 4L; 6L |] |]
                use pixels = randomPixels grid 2L
                use out = run model pixels grid
                Expect.sequenceEqual out.shape [| (12L * 20L + 24L) / 4L; 24L |] "shape"
                let state = model.state_dict()
                use expected = referenceTower config state pixels grid
                let diff = out.sub(expected).abs().max().item<float32>()
                Expect.isLessThan (float diff) 1e-4 "max abs difference to the reference"
            }

            test "patch embedding equals the checkpoint's Conv3d applied to the patch rows" {
                let config = VisionConfig.Tiny 16
                use model = randomTower config 9L
                use pixels = randomPixels [| [| 1L; 2L; 2L |] |] 10L
                let weight = model.state_dict()["patch_embed.proj.weight"]
                use embed = new VisionPatchEmbed("patch_embed", config)
                use _ = torch.no_grad()
                let target = embed.state_dict()["proj.weight"]
                target.copy_(weight) |> ignore
                use ours = embed.forward(pixels)
                let patches = pixels.view(-1L, 3L, 2L, 14L, 14L)
                use conv = torch.nn.functional.conv3d(patches, weight, strides = [| 2L; 14L; 14L |]).view(-1L, 32L)
                Expect.isLessThan (float (ours.sub(conv).abs().max().item<float32>())) 1e-4 "matmul = conv3d"
            }

            test "bf16 weights run and stay close to fp32" {
                let config = VisionConfig.Tiny 16
                use model = randomTower config 11L
                let grid = [| [| 1L; 8L; 12L |] |]
                use pixels = randomPixels grid 12L
                use y32 = run model pixels grid
                model.``to``(torch.ScalarType.BFloat16) |> ignore
                use y16 = run model pixels grid
                Expect.equal y16.dtype torch.ScalarType.BFloat16 "bf16 output"
                let num = y16.float().sub(y32).norm().item<float32>()
                let rel = num / y32.norm().item<float32>()
                Expect.isLessThan (float rel) 0.05 "relative difference"
            }

            test "window attention equals full attention when one window covers the image" {
                let windowed = VisionConfig.Tiny 16
                let full =
                    VisionConfig(Depth = 4, HiddenSize = 32, IntermediateSize = 64, NumHeads = 2, OutHiddenSize = 16,
                                 FullAttentionBlockIndexes = [| 0; 1; 2; 3 |])
                use a = randomTower windowed 3L
                use b = new Qwen25VisionTransformer("visual", full)
                copyWeights a b
                b.eval()
                // 112 px and 56 px images: 8 × 8 and 4 × 4 patches, at most 4 × 4 merged tokens = one window.
                for grid in [ [| [| 1L; 8L; 8L |] |]; [| [| 1L; 4L; 4L |] |]; [| [| 1L; 8L; 4L |]; [| 1L; 4L; 8L |] |] ] do
                    use pixels = randomPixels grid 4L
                    use ya = run a pixels grid
                    use yb = run b pixels grid
                    Expect.isLessThan (float (ya.sub(yb).abs().max().item<float32>())) 1e-5 "windowed = full"
                // The comparison can fail: on a 224 px image (4 windows) windowed and full attention differ.
                let big = [| [| 1L; 16L; 16L |] |]
                use pixels = randomPixels big 5L
                use ya = run a pixels big
                use yb = run b pixels big
                Expect.isGreaterThan (float (ya.sub(yb).abs().max().item<float32>())) 1e-3 "several windows: they differ"
            }

            test "two images in one batch give the same features as each alone" {
                let config = VisionConfig.Tiny 16
                use model = randomTower config 6L
                let g1, g2 = [| 1L; 8L; 12L |], [| 1L; 10L; 6L |]
                use p1 = randomPixels [| g1 |] 7L
                use p2 = randomPixels [| g2 |] 8L
                use alone1 = run model p1 [| g1 |]
                use alone2 = run model p2 [| g2 |]
                use both = run model (torch.cat([| p1; p2 |], 0L)) [| g1; g2 |]
                use expected = torch.cat([| alone1; alone2 |], 0L)
                Expect.isLessThan (float (both.sub(expected).abs().max().item<float32>())) 1e-5 "batched = alone"
            }

            test "window partition matches the reference's padded-grid construction" {
                // The reference pads each merged grid to whole windows with -100, lists window by window, drops pads.
                let reference (grid: int64[][]) (ws: int64) =
                    let order = ResizeArray<int64>()
                    let bounds = ResizeArray<int64>([ 0L ])
                    let mutable first = 0L
                    for g in grid do
                        let t, h, w = g[0], g[1] / 2L, g[2] / 2L
                        let ph, pw = h + (ws - h % ws), w + (ws - w % ws)
                        for f in 0L .. t - 1L do
                            for wr in 0L .. ph / ws - 1L do
                                for wc in 0L .. pw / ws - 1L do
                                    let mutable count = 0L
                                    for r in wr * ws .. wr * ws + ws - 1L do
                                        for c in wc * ws .. wc * ws + ws - 1L do
                                            if r < h && c < w then
                                                order.Add(first + f * h * w + r * w + c)
                                                count <- count + 1L
                                    if count > 0L then bounds.Add(bounds[bounds.Count - 1] + 4L * count)
                        first <- first + t * h * w
                    order.ToArray(), bounds.ToArray()
                for grid in [ [| [| 1L; 12L; 20L |] |]; [| [| 1L; 16L; 16L |]; [| 1L; 2L; 30L |] |]; [| [| 2L; 10L; 6L |] |] ] do
                    let p = VisionWindowPartition.Compute(grid, 4, 2)
                    let order, bounds = reference grid 4L
                    Expect.sequenceEqual p.MergedTokenOrder order "window order"
                    Expect.sequenceEqual p.WindowBoundaries bounds "window boundaries"
                    let inv = p.InverseOrder()
                    Expect.sequenceEqual (Array.init order.Length (fun i -> p.MergedTokenOrder[int inv[i]])) (Array.init order.Length int64) "inverse"
            }

            test "wrong pixel row width or a grid that does not match the rows is rejected naming the tensor" {
                use model = new Qwen25VisionTransformer("visual", VisionConfig.Tiny 16)
                let grid = [| [| 1L; 4L; 4L |] |]
                throwsWith<VisionInputException> [ "pixel_values"; "1176"; "1175" ] (fun () -> run model (torch.randn(16L, 1175L)) grid |> ignore)
                throwsWith<VisionInputException> [ "pixel_values"; "20"; "16" ] (fun () -> run model (torch.randn(20L, 1176L)) grid |> ignore)
                throwsWith<VisionInputException> [ "image_grid_thw"; "merge" ] (fun () -> run model (torch.randn(15L, 1176L)) [| [| 1L; 3L; 5L |] |] |> ignore)
            }
        ]
    ]
