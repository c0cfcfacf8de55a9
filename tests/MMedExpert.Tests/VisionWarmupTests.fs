module MMedExpert.Tests.VisionWarmupTests

open System
open System.IO
open Expecto
open TorchSharp
open MMedExpert.Core.Training
open MMedExpert.Core.Vision
open MMedExpert.Data.MedSynth
open MMedExpert.Tests.TestKit
open MMedExpert.Tests.TinyVlm

/// A noisy 56×56 PNG with one 14×14 square: in the top or bottom half (label 0, a place) and red or blue (label 1, a
/// colour), at a random column.
let private writeScene (path: string) (rng: Random) (top: bool) (red: bool) (size: int) =
    let pixels = Array.init (size * size * 3) (fun _ -> byte (60 + rng.Next 40))
    let x0 = rng.Next(size - 14)
    let y0 = if top then rng.Next(size / 2 - 14) else size / 2 + rng.Next(size / 2 - 14)
    for y in y0 .. y0 + 13 do
        for x in x0 .. x0 + 13 do
            let o = (y * size + x) * 3
            pixels[o] <- if red then 240uy else 40uy
            pixels[o + 2] <- if red then 40uy else 240uy
    use stream = File.Create path
    StbImageWriteSharp.ImageWriter().WritePng(pixels, size, size, StbImageWriteSharp.ColorComponents.RedGreenBlue, stream)
    ImageLabelSample(path, [| (0, top); (1, red) |])

let private scenes (dir: string) (seed: int) (n: int) =
    let rng = Random(seed)
    [ for i in 0 .. n - 1 -> writeScene (Path.Combine(dir, $"s{seed}-{i}.png")) rng (rng.Next 2 = 0) (rng.Next 2 = 0) 56 ]

let private trainingError (f: unit -> unit) : TrainingException =
    try
        f ()
        failtest "expected a TrainingException"
    with :? TrainingException as e -> e

[<Tests>]
let tests =
    testList "VisionWarmup" [
        test "the warm-up trains the tower to read a place and a colour on held-out images" {
            use dir = new TempDir()
            let train, heldOut = scenes dir.Path 1 96, scenes dir.Path 2 48
            use m = model 5L
            let before = [ for p in m.visual.parameters() -> p.detach().clone() ]
            let options = TrainerOptions(LearningRate = 3e-3, WarmupSteps = 5, TotalSteps = 60, ClipNorm = 1.0, Seed = 3L)
            let result = VisionWarmup.Train(m.visual, ImageProcessor(), train, heldOut, 2, options, 16)
            Expect.isTrue result.Run.Completed "ran to the end"
            Expect.isLessThan (Seq.last result.Run.Losses) (0.5 * Seq.head result.Run.Losses) "the loss fell by half"
            Expect.isGreaterThanOrEqual result.HeldOutAccuracy[0] 0.9 "place read on held-out images"
            Expect.isGreaterThanOrEqual result.HeldOutAccuracy[1] 0.9 "colour read on held-out images"
            let moved = Seq.zip before (m.visual.parameters()) |> Seq.exists (fun (a, b) -> not (a.allclose(b)))
            Expect.isTrue moved "the tower's weights changed (the probe is not the only thing trained)"
        }

        test "an image of another size is an error naming it; labels outside the range are refused" {
            use dir = new TempDir()
            let train = scenes dir.Path 1 4
            let odd = writeScene (Path.Combine(dir.Path, "odd.png")) (Random 0) true true 84
            use m = model 5L
            let options = TrainerOptions(LearningRate = 1e-3, TotalSteps = 2, Seed = 3L)
            let e = trainingError (fun () -> VisionWarmup.Train(m.visual, ImageProcessor(), train @ [ odd ], [], 2, options, 32) |> ignore)
            Expect.stringContains e.Message "odd.png" "names the image"
            let bad = ImageLabelSample(train[0].ImagePath, [| (2, true) |])
            let e2 = trainingError (fun () -> VisionWarmup.Train(m.visual, ImageProcessor(), [ bad ], [], 2, options, 2) |> ignore)
            Expect.stringContains e2.Message "label 2" "names the label"
        }

        test "MedSynth labels are the scene's own image findings, label 2·specialty + pairing" {
            let generated = MedSynthGenerator.Generate(MedSynthOptions(N = 64, Seed = 5UL, ImageSize = 56))
            for g in generated do
                let labels = ImageFindingLabels.For g.Item
                Expect.isNotNull (box labels) $"{g.Item.Id} has labels"
                let s = Scenario.All |> Seq.findIndex (fun sc -> sc.Specialty = g.Item.Specialty)
                Expect.sequenceEqual labels [ (2 * s, g.SceneImage1); (2 * s + 1, g.SceneImage2) ] $"{g.Item.Id}: what the drawn scene shows"
            let values = generated |> Seq.collect (fun g -> [ g.SceneImage1; g.SceneImage2 ]) |> Set.ofSeq
            Expect.equal values (Set.ofList [ true; false ]) "both values occur"
            let other = otherSpecialty generated[0].Item
            Expect.isNull (box (ImageFindingLabels.For other)) "no labels outside MedSynth's specialties"
            Expect.equal ImageFindingLabels.Count 8 "two per specialty"
        }
    ]
