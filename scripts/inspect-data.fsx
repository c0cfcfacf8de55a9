// Data-set inspection: reads MMedExpert JSONL files through the Data library's validating loader (the one the pipeline
// uses, so a bad line stops here with its file:line and field) and prints what a training run will see: items per split
// and specialty, the answer letters per specialty (a skew there is a shortcut a model can learn without looking at the
// image), reasoning perspectives, options per item, images per item and the annotations GBA's rewards read.
//
//   dotnet fsi scripts/inspect-data.fsx PATH [PATH ...]     (a .jsonl file, or a folder of them such as runs/<name>/data)
//
// A data set to try it on: ./mmx data synth --out /tmp/medsynth --n 256   (or the data/ folder of a pipeline run)
#load "References.fsx"

open System
open System.IO
open References
open MMedExpert.Data.Schema

if scriptArgs.Length = 0 then
    eprintfn "usage: dotnet fsi scripts/inspect-data.fsx PATH [PATH ...]   (a .jsonl file or a folder of them)"
    exit 2

let files =
    [ for path in scriptArgs do
        if Directory.Exists path then
            let found = Directory.GetFiles(path, "*.jsonl") |> Array.sort
            if found.Length = 0 then failwithf "%s: no .jsonl files in this folder" path
            yield! found
        elif File.Exists path then yield path
        else failwithf "%s: no such file or folder" path ]

let items =
    [ for file in files do
        let result = MedItemLoader.Load(file)
        printfn "%O" result.Summary
        yield! result.Items ]
if items.IsEmpty then failwith "no items in the given files"

/// Prints a count table: rows × columns, with row and column totals.
let countTable (title: string) (rowOf: MedItem -> string) (columnOf: MedItem -> string) =
    let rows = items |> List.map rowOf |> List.distinct |> List.sort
    let columns = items |> List.map columnOf |> List.distinct |> List.sort
    let count r c = items |> List.filter (fun i -> rowOf i = r && columnOf i = c) |> List.length
    let width = (title :: rows |> List.map String.length |> List.max) + 2
    let headers = columns @ [ "total" ]
    let widths = headers |> List.map (fun h -> max 8 (h.Length + 2))
    let line (label: string) (cells: string list) =
        label.PadRight width + (List.map2 (fun (w: int) (c: string) -> c.PadLeft w) widths cells |> String.concat "")
    printfn "\n%s" (line title headers)
    for r in rows do
        let counts = columns |> List.map (count r)
        printfn "%s" (line r (counts @ [ List.sum counts ] |> List.map string))
    let totals = columns |> List.map (fun c -> items |> List.filter (fun i -> columnOf i = c) |> List.length)
    printfn "%s" (line "total" (totals @ [ items.Length ] |> List.map string))

printfn "\n%d items in %d file(s)" items.Length files.Length
countTable "specialty \\ split" (fun i -> i.Specialty) (fun i -> i.Split)
countTable "specialty \\ answer" (fun i -> i.Specialty) (fun i -> i.Answer)
countTable "specialty \\ perspective" (fun i -> i.Specialty) (fun i -> i.Perspective)
countTable "split \\ options per item" (fun i -> i.Split) (fun i -> string i.Options.Count)

// The share of the most frequent answer letter per specialty, against uniform guessing over that specialty's options:
// a model that always answers the majority letter scores this without reading anything.
printfn "\nanswer-letter shortcut per specialty (majority letter share vs 1 / options):"
for specialty, group in items |> List.groupBy (fun i -> i.Specialty) |> List.sortBy fst do
    let letter, count = group |> List.countBy (fun i -> i.Answer) |> List.maxBy snd
    let chance = group |> List.averageBy (fun i -> 1.0 / float i.Options.Count)
    printfn "  %-18s majority %s = %5.1f %%   chance %5.1f %%" specialty letter (100.0 * float count / float group.Length) (100.0 * chance)

let describe (name: string) (values: float list) =
    if values.IsEmpty then printfn "  %-34s none" name
    else printfn "  %-34s mean %7.1f   min %6.0f   max %6.0f" name (List.average values) (List.min values) (List.max values)
printfn "\nper item:"
describe "images" (items |> List.map (fun i -> float i.Images.Count))
describe "question length (characters)" (items |> List.map (fun i -> float i.Question.Length))
describe "reasoning length (characters)" (items |> List.map (fun i -> float i.Reasoning.Length))
describe "key findings" (items |> List.map (fun i -> float i.Guideline.KeyFindings.Count))
describe "guideline steps" (items |> List.map (fun i -> float i.Guideline.GuidelineSteps.Count))
let withPretest = items |> List.filter (fun i -> i.Guideline.PretestProbability.HasValue) |> List.length
printfn "  %-34s %d of %d items (%d of them bayesian)" "pre-test probability annotated" withPretest items.Length
    (items |> List.filter (fun i -> i.Guideline.PretestProbability.HasValue && i.Perspective = Vocabulary.Bayesian) |> List.length)
