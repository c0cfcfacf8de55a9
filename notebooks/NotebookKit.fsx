// What every notebook shares: the project's assemblies, the run folder it reads, JSON files, charts as HTML + PNG.
// A notebook starts with `#load "NotebookKit.fsx"`. The references below point at notebooks/.lib/, which
// scripts/run-notebooks.sh fills from the CLI's Release build (every project assembly, TorchSharp with its patched
// native library, Plotly.NET) minus FSharp.Core.dll: the F# kernel of dotnet-repl 0.3.259 hosts FSharp.Core 10.0 and
// fails when it finds the build's 10.1 copy beside the referenced assemblies. Run that script once before opening a
// notebook in an editor.
#r ".lib/TorchSharp.dll"
#r ".lib/MMedExpert.Algebra.dll"
#r ".lib/MMedExpert.Core.dll"
#r ".lib/MMedExpert.Data.dll"
#r ".lib/DynamicObj.dll"
#r ".lib/Fable.Core.dll"
#r ".lib/Giraffe.ViewEngine.dll"
#r ".lib/Newtonsoft.Json.dll"
#r ".lib/Plotly.NET.dll"

open System
open System.Diagnostics
open System.IO
open System.Text.Json
open Plotly.NET

// TorchSharp's native library: load the build's patched copy first, so that TorchSharp's own lookup by name finds it
// (same soname) in any host. dotnet-repl finds it by itself; a host that ignores mmx.deps.json would instead copy an
// unpatched libtorch (~0.5 GB) out of the NuGet cache, which fails to load on Debian 12 (README, "TorchSharp on Debian 12").
if OperatingSystem.IsLinux() then
    let torchSharp = Path.Combine(__SOURCE_DIRECTORY__, ".lib", "runtimes", "linux-x64", "native", "libLibTorchSharp.so")
    if File.Exists torchSharp then Runtime.InteropServices.NativeLibrary.Load torchSharp |> ignore

/// A notebook cannot go on (no run folder, a missing stage output, a malformed file); the message names the file.
exception NotebookError of string with
    override this.Message = this.Data0

let fail fmt = Printf.kprintf (fun message -> raise (NotebookError message)) fmt

let private env name =
    match Environment.GetEnvironmentVariable name with
    | null -> ""
    | value -> value.Trim()

/// The repository root (MMX_REPO, set by the runner; otherwise the folder above notebooks/).
let repo =
    match env "MMX_REPO" with
    | "" -> Path.GetFullPath(Path.Combine(__SOURCE_DIRECTORY__, ".."))
    | path -> path

/// Where this notebook's charts and tables go (MMX_OUT, set by the runner to notebooks/out/<notebook>/).
let outDir =
    let dir =
        match env "MMX_OUT" with
        | "" -> Path.Combine(__SOURCE_DIRECTORY__, "out", "interactive")
        | path -> path
    Directory.CreateDirectory dir |> ignore
    dir

/// The file a sample run (scripts/dev/make-sample-run.fsx) carries: its numbers are made up, for developing notebooks.
let sampleMarker = "SAMPLE-RUN-FAKE-DATA"

let isSampleRun (run: string) = File.Exists(Path.Combine(run, sampleMarker))

/// The run folder (docs/run-layout.md) the notebook reads: MMX_RUN (the runner's --run), else the newest runs/*/ that is
/// not a sample run. Fails with what to do when there is none.
let runDir () =
    match env "MMX_RUN" with
    | "" ->
        let runs = Path.Combine(repo, "runs")
        let candidates =
            if Directory.Exists runs then
                DirectoryInfo(runs).GetDirectories()
                |> Array.filter (fun d -> not (isSampleRun d.FullName))
                |> Array.sortByDescending (fun d -> d.LastWriteTimeUtc)
            else [||]
        if candidates.Length = 0 then
            fail "This notebook reads a pipeline run, and there is none: %s has no run folder. Run `./mmx pipeline` (it writes runs/<name>/), then rerun the notebooks (scripts/run-notebooks.sh picks the newest run), or point them at a run with `scripts/run-notebooks.sh --run DIR` (MMX_RUN)." runs
        candidates[0].FullName
    | path when Directory.Exists path -> Path.GetFullPath path
    | path -> fail "MMX_RUN=%s: no such folder (the run folder this notebook should read)" path

/// A banner for charts and tables made from a sample run, so that fake numbers never pass for results.
let sampleNote (run: string) =
    if isSampleRun run then " [SAMPLE RUN: FAKE DATA, NOT RESULTS]" else ""

/// Prints where the notebook reads from and writes to; warns loudly about a sample run.
let describeRun (run: string) =
    printfn "run folder: %s" run
    printfn "outputs:    %s" outDir
    if isSampleRun run then
        printfn "!!! %s is a SAMPLE run made by scripts/dev/make-sample-run.fsx: its numbers are made up to develop the notebooks. They are not results. !!!" run

/// A file of the run, which must exist; `producedBy` names the stage that writes it (for the error message).
let runFile (run: string) (relative: string) (producedBy: string) =
    let path = Path.Combine(run, relative)
    if not (File.Exists path) then fail "%s: missing (written by %s; has that stage of the pipeline finished?)" path producedBy
    path

/// Subfolders of a run folder (e.g. "eval"), sorted by name; fails when the folder is missing or empty.
let runSubdirs (run: string) (relative: string) (producedBy: string) =
    let dir = Path.Combine(run, relative)
    if not (Directory.Exists dir) then fail "%s: missing (written by %s; has that stage of the pipeline finished?)" dir producedBy
    let dirs = Directory.GetDirectories dir |> Array.sort
    if dirs.Length = 0 then fail "%s: empty (written by %s)" dir producedBy
    dirs

// ---- JSON ----------------------------------------------------------------------------------------------------------
// Field names match ignoring case and underscores, so `field "ci_low"` reads both "ci_low" and "ciLow": the stages write
// snake_case (docs/run-layout.md) and some F# records serialise as camelCase.

let private normalise (name: string) = name.Replace("_", "").ToLowerInvariant()

/// A JSON value and where it came from (file, line, path inside), for error messages.
type Json =
    { Element: JsonElement
      Source: string }

let private parseJson (source: string) (text: string) =
    try
        use doc = JsonDocument.Parse text
        { Element = doc.RootElement.Clone(); Source = source }
    with :? JsonException as e -> fail "%s: invalid JSON: %s" source e.Message

/// A JSON file.
let readJson (path: string) =
    if not (File.Exists path) then fail "%s: missing" path
    parseJson path (File.ReadAllText path)

/// A JSON-lines file: one object per non-empty line.
let readJsonLines (path: string) =
    if not (File.Exists path) then fail "%s: missing" path
    File.ReadAllLines path
    |> Array.mapi (fun i line -> i, line)
    |> Array.filter (fun (_, line) -> not (String.IsNullOrWhiteSpace line))
    |> Array.map (fun (i, line) -> parseJson (sprintf "%s:%d" path (i + 1)) line)

let tryField (name: string) (j: Json) =
    if j.Element.ValueKind <> JsonValueKind.Object then None
    else
        j.Element.EnumerateObject()
        |> Seq.tryFind (fun p -> normalise p.Name = normalise name)
        |> Option.map (fun p -> { Element = p.Value; Source = sprintf "%s: %s" j.Source p.Name })

let field (name: string) (j: Json) =
    match tryField name j with
    | Some v -> v
    | None -> fail "%s: no field '%s'" j.Source name

/// The object's field names, in file order.
let fieldNames (j: Json) =
    if j.Element.ValueKind <> JsonValueKind.Object then fail "%s: not an object" j.Source
    j.Element.EnumerateObject() |> Seq.map (fun p -> p.Name) |> List.ofSeq

let isJsonNull (j: Json) = j.Element.ValueKind = JsonValueKind.Null

let number (j: Json) =
    match j.Element.ValueKind with
    | JsonValueKind.Number -> j.Element.GetDouble()
    | kind -> fail "%s: expected a number, found %O" j.Source kind

/// A number, or NaN for null (e.g. an undefined cosine).
let numberOrNaN (j: Json) = if isJsonNull j then nan else number j

let text (j: Json) =
    match j.Element.ValueKind with
    | JsonValueKind.String -> j.Element.GetString()
    | kind -> fail "%s: expected a string, found %O" j.Source kind

let items (j: Json) =
    match j.Element.ValueKind with
    | JsonValueKind.Array -> j.Element.EnumerateArray() |> Seq.mapi (fun i e -> { Element = e; Source = sprintf "%s[%d]" j.Source i }) |> Array.ofSeq
    | kind -> fail "%s: expected an array, found %O" j.Source kind

/// Object fields as (name, value) pairs, in file order.
let entries (j: Json) =
    if j.Element.ValueKind <> JsonValueKind.Object then fail "%s: not an object" j.Source
    j.Element.EnumerateObject() |> Seq.map (fun p -> p.Name, { Element = p.Value; Source = sprintf "%s: %s" j.Source p.Name }) |> List.ofSeq

// ---- files written by the notebooks ------------------------------------------------------------------------------------

/// Writes a file through a temporary name and a rename, so a failed notebook never leaves half a file. The temporary
/// name keeps the extension (chromium picks the image format from it; Plotly.NET appends .html to a name without it).
let writeAtomically (path: string) (write: string -> unit) =
    let tag = (Guid.NewGuid().ToString "N").Substring(0, 8)
    let temp = Path.Combine(Path.GetDirectoryName path, sprintf "%s.tmp-%s%s" (Path.GetFileNameWithoutExtension path) tag (Path.GetExtension path))
    try
        write temp
        File.Move(temp, path, true)
    finally
        if File.Exists temp then File.Delete temp

let writeText (name: string) (content: string) =
    let path = Path.Combine(outDir, name)
    writeAtomically path (fun temp -> File.WriteAllText(temp, content))
    printfn "wrote %s" path
    path

// ---- charts -------------------------------------------------------------------------------------------------------
// HTML with plotly.js embedded (no network where the notebooks run, so a CDN reference would not load), and a PNG
// screenshot by headless chromium when the runner found or installed one (MMX_CHROMIUM).

let chromium = env "MMX_CHROMIUM"

let private renderPng (html: string) (png: string) (width: int) (height: int) =
    let profile = Directory.CreateTempSubdirectory("mmx-chromium-").FullName
    try
        writeAtomically png (fun temp ->
            let args =
                [ "--headless"; "--no-sandbox"; "--disable-gpu"; "--disable-quic"; "--no-first-run"
                  "--disable-background-networking"; "--disable-component-update"; "--disable-sync"; "--hide-scrollbars"
                  sprintf "--user-data-dir=%s" profile
                  sprintf "--screenshot=%s" temp
                  sprintf "--window-size=%d,%d" width height
                  Uri(html).AbsoluteUri ]
            let start = ProcessStartInfo(chromium, args, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false)
            use p = Process.Start start
            let stderr = p.StandardError.ReadToEndAsync()
            p.StandardOutput.ReadToEnd() |> ignore
            if not (p.WaitForExit 120_000) then
                p.Kill true
                fail "%s: chromium took more than 120 s to render %s" png html
            if p.ExitCode <> 0 || not (File.Exists temp) || FileInfo(temp).Length = 0L then
                fail "%s: chromium (%s) exited with %d without a screenshot of %s: %s" png chromium p.ExitCode html (stderr.Result.Trim()))
    finally
        try Directory.Delete(profile, true) with _ -> ()

/// Saves a chart as outDir/NAME.html (plotly.js inline) and, with chromium, outDir/NAME.png; prints the paths.
let saveChartSized (width: int) (height: int) (name: string) (chart: GenericChart) =
    let html = Path.Combine(outDir, name + ".html")
    // One serialisation (the slow part, ~2 s) serves both files.
    let document =
        chart
        |> Chart.withSize (width, height)
        |> Chart.withDisplayOptions (DisplayOptions.init (PlotlyJSReference = PlotlyJSReference.Full))
        |> GenericChart.toEmbeddedHTML
    writeAtomically html (fun temp -> File.WriteAllText(temp, document))
    printfn "chart %s" html
    if chromium <> "" then
        // The screenshot is taken of a copy without plotly's toolbar, which means nothing on a picture.
        let still = Path.Combine(Path.GetTempPath(), sprintf "mmx-chart-%s.html" (Guid.NewGuid().ToString "N"))
        try
            let head = document.IndexOf "<head>"
            if head < 0 then fail "%s: Plotly.NET wrote no <head>" html
            File.WriteAllText(still, document.Insert(head + 6, "<style>.modebar-container{display:none !important}</style>"))
            let png = Path.ChangeExtension(html, ".png")
            renderPng still png width height
            printfn "chart %s" png
        finally
            if File.Exists still then File.Delete still

/// `saveChartSized` at 1000 × 700 pixels.
let saveChart name chart = saveChartSized 1000 700 name chart

// ---- tables -------------------------------------------------------------------------------------------------------

/// A Markdown table (header row + rows); printed by the notebook and written for the report.
let markdownTable (header: string list) (rows: string list list) =
    let line cells = "| " + String.concat " | " cells + " |"
    for r in rows do
        if List.length r <> List.length header then fail "table row %A has %d cells for %d columns" r (List.length r) (List.length header)
    let widths = header |> List.mapi (fun i h -> rows |> List.fold (fun w r -> max w (String.length (List.item i r))) (String.length h))
    let pad (cells: string list) = cells |> List.mapi (fun i c -> c.PadRight(List.item i widths))
    [ yield line (pad header)
      yield line (widths |> List.map (fun w -> String('-', max 3 w)))
      for r in rows -> line (pad r) ]
    |> String.concat "\n"

/// A fraction as a percentage with one decimal, rounded as the pipeline's report rounds it ("0.0": halves away from
/// zero; sprintf "%.1f" rounds 77 of 400 = 19.25 to 19.2 where the report prints 19.3).
let pct (x: float) =
    if Double.IsNaN x then "n/a" else (100.0 * x).ToString("0.0", Globalization.CultureInfo.InvariantCulture)

// ---- what the pipeline's stages wrote (docs/run-layout.md) -------------------------------------------------------------

/// Accuracy with its 95% interval over n items.
type Score =
    { N: int
      Accuracy: float
      CiLow: float
      CiHigh: float }

/// eval/<model>/results.json.
type EvalResult =
    { Model: string
      Bench: string
      Overall: Score
      InvalidFormatRate: float option
      /// grouping field (e.g. "specialty") → group value → score.
      ByGroup: Map<string, Map<string, Score>> }

// The interval is read as ci_low/ci_high (docs/run-layout.md) or as ci95.low/ci95.high (the eval harness's EvalResults).
let private scoreOf (j: Json) =
    let low, high =
        match tryField "ci95" j with
        | Some ci -> number (field "low" ci), number (field "high" ci)
        | None -> number (field "ci_low" j), number (field "ci_high" j)
    { N = int (number (field "n" j)); Accuracy = number (field "accuracy" j); CiLow = low; CiHigh = high }

/// Every eval/<model>/results.json of the run, by model name (the folder's name).
let readEvalResults (run: string) : Map<string, EvalResult> =
    runSubdirs run "eval" "the pipeline's eval stage"
    |> Array.map (fun dir ->
        let model = Path.GetFileName dir
        let j = readJson (runFile run (Path.Combine("eval", model, "results.json")) "the pipeline's eval stage")
        let bench =
            match tryField "bench" j, tryField "benchmark" j with
            | Some b, _ | None, Some b -> text b
            | None, None -> fail "%s: no field 'bench' (or 'benchmark')" j.Source
        let byGroup =
            match tryField "by_group" j with
            | None -> Map.empty
            | Some groups ->
                entries groups |> List.map (fun (name, values) -> name, (entries values |> List.map (fun (v, s) -> v, scoreOf s) |> Map.ofList)) |> Map.ofList
        model,
        { Model = model
          Bench = bench
          Overall = scoreOf j
          InvalidFormatRate = tryField "invalid_format_rate" j |> Option.map number
          ByGroup = byGroup })
    |> Map.ofArray

/// "41.3 [36.5, 46.2]": accuracy and its 95% interval, in percent.
let scoreText (s: Score) = sprintf "%s [%s, %s]" (pct s.Accuracy) (pct s.CiLow) (pct s.CiHigh)

/// One RL training curve: metrics/rl-<specialty>-<advantage>[-seed<k>].jsonl (seed 0: the run's main RL seed, whose
/// experts are the ones merged and evaluated first; k ≥ 1: the extra seeds of the GBA-vs-GRPO comparison).
type RlCurve =
    { Specialty: string
      Advantage: string
      Seed: int
      File: string
      Rows: Json[] }

/// (specialty, advantage, seed) of a curve file's stem "rl-<specialty>-<advantage>[-seed<k>]"; specialty names use '_'.
let parseRlCurveName (file: string) =
    let stem = Path.GetFileNameWithoutExtension(file).Substring 3
    let parts = stem.Split '-'
    let seed, named =
        match Array.last parts with
        | p when p.StartsWith "seed" && p.Length > 4 && Seq.forall Char.IsDigit (p.Substring 4) -> int (p.Substring 4), parts[.. parts.Length - 2]
        | _ -> 0, parts
    if named.Length <> 2 || named |> Array.exists String.IsNullOrEmpty then
        fail "%s: expected the name rl-<specialty>-<advantage>[-seed<k>].jsonl" file
    named[0], named[1], seed

/// Every metrics/rl-*.jsonl of the run, sorted by specialty, advantage, then seed.
let readRlCurves (run: string) : RlCurve list =
    let dir = Path.Combine(run, "metrics")
    let files = if Directory.Exists dir then Directory.GetFiles(dir, "rl-*.jsonl") else [||]
    if files.Length = 0 then fail "%s: no rl-*.jsonl (written by the pipeline's RL stage; has it run?)" dir
    [ for f in files ->
        let specialty, advantage, seed = parseRlCurveName f
        let rows = readJsonLines f
        if rows.Length = 0 then fail "%s: empty" f
        { Specialty = specialty; Advantage = advantage; Seed = seed; File = f; Rows = rows } ]
    |> List.sortBy (fun c -> c.Specialty, c.Advantage, c.Seed)

/// (step, value) of one metric along a curve; fails naming the file:line where the metric is missing.
let curveSeries (metric: string) (curve: RlCurve) =
    curve.Rows |> Array.map (fun r -> number (field "step" r), number (field metric r))

/// The perspectives a curve logs rewards for (its reward_<perspective> fields other than reward_mean).
let curvePerspectives (curve: RlCurve) =
    fieldNames curve.Rows[0]
    |> List.filter (fun n -> n.StartsWith("reward_", StringComparison.OrdinalIgnoreCase) && not (n.Equals("reward_mean", StringComparison.OrdinalIgnoreCase)))
    |> List.map (fun n -> n.Substring 7)

/// A list from the run's config.json (e.g. "gba" "advantages": the first is the method, the rest ablations); None when
/// the run has no config.json or the config lacks the key.
let configList (run: string) (section: string) (key: string) : string list option =
    let path = Path.Combine(run, "config.json")
    if not (File.Exists path) then None
    else
        readJson path
        |> tryField section
        |> Option.bind (tryField key)
        |> Option.map (items >> Array.map text >> List.ofArray)

/// The run's advantage estimators, the method first (config gba.advantages; gba, grpo when the config does not say).
let runAdvantages (run: string) =
    match configList run "gba" "advantages" with
    | Some (first :: rest) -> first :: rest
    | _ -> [ "gba"; "grpo" ]

/// The advantage estimator that is the method (config gba.advantages[0]; "gba" when the config does not say).
let methodAdvantage (run: string) = List.head (runAdvantages run)

/// A merged model's name in eval/ split into (merge method, advantage of the experts it merged): the pipeline names
/// them merged-<method>-<advantage> (merged-conflict_aware-gba); a name without a known advantage gives None for it.
let parseMerged (advantages: string list) (model: string) : (string * string option) option =
    if not (model.StartsWith "merged-") then None
    else
        let rest = model.Substring 7
        match advantages |> List.tryFind (fun a -> rest.EndsWith("-" + a)) with
        | Some a -> Some(rest.Substring(0, rest.Length - a.Length - 1), Some a)
        | None -> Some(rest, None)

/// The merge method that is the method (config merge.methods[0]; "conflict_aware" when the config does not say).
let methodMerge (run: string) =
    match configList run "merge" "methods" with
    | Some (first :: _) -> first
    | _ -> "conflict_aware"

/// A column chart of accuracies (percent) with their 95% intervals as error bars.
let scoreColumns (name: string) (labels: string list) (scores: Score list) =
    Chart.Column([ for s in scores -> 100.0 * s.Accuracy ], labels, Name = name)
    |> Chart.withYErrorStyle (
        Array = [ for s in scores -> 100.0 * (s.CiHigh - s.Accuracy) ],
        Arrayminus = [ for s in scores -> 100.0 * (s.Accuracy - s.CiLow) ])

/// Whether a's interval lies wholly above b's.
let aboveBeyondCi (a: Score) (b: Score) = a.CiLow > b.CiHigh
