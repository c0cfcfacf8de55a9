// A PEFT LoRA adapter with random, non-zero B factors over a checkpoint, so that merging it (`mmx export --model
// ADAPTER`) changes every targeted weight: the input of the transformers check of an adapter export
// (docs/export.md, "Checked with transformers 4.50").
//
//   dotnet fsi scripts/hfcheck/make-random-adapter.fsx BASE_DIR OUT_DIR [SEED] [--vision]
//
// Rank 4, alpha 8, the language model's default targets (--vision: the vision tower's linears too), Gaussian A,
// B ~ 0.05·N(0, 1) (seeded). base_model_name_or_path is BASE_DIR's full path.
#load "../References.fsx"

open System.IO
open MMedExpert.Core.Lora
open MMedExpert.Core.Model
open References
open TorchSharp

let positional = scriptArgs |> Array.filter (fun a -> not (a.StartsWith "--"))
if positional.Length < 2 then
    eprintfn "usage: dotnet fsi scripts/hfcheck/make-random-adapter.fsx BASE_DIR OUT_DIR [SEED] [--vision]"
    exit 2
let baseDir, outDir = Path.GetFullPath positional[0], Path.GetFullPath positional[1]
let seed = if positional.Length > 2 then uint64 positional[2] else 7UL
let vision = scriptArgs |> Array.contains "--vision"

let model = Qwen25VL.Load baseDir
let adapters = new LoraAdapters(model)
let config = LoraConfig(R = 4, Alpha = 8.0, Dropout = 0.0, Init = LoraInit.Gaussian, IncludeVision = vision, BaseModelNameOrPath = baseDir)
adapters.Add("a", config, int64 seed)
do
    use _ = torch.no_grad()
    let g = new torch.Generator(seed)
    for w in adapters.Modules "a" do
        w.B.copy_(torch.randn(w.B.shape, generator = g).mul(Scalar.op_Implicit 0.05)) |> ignore
adapters.Save("a", outDir)
let modules = adapters.Modules "a"
printfn "wrote %s: %d LoRA modules (rank 4, scale %g, vision %b), max |B| %.4f" outDir modules.Count config.Scale vision
    (modules |> Seq.map (fun w -> w.B.abs().max().item<float32>()) |> Seq.max)
adapters.Dispose()
model.Dispose()
