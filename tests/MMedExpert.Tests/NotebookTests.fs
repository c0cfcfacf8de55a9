/// The notebooks and the F# scripts rerun headless through the same commands a reviewer uses:
/// scripts/run-notebooks.sh (dotnet-repl) and scripts/run-scripts.sh (dotnet fsi).
module MMedExpert.Tests.NotebookTests

open System
open System.Diagnostics
open System.IO
open Expecto
open MMedExpert.Tests.TestKit

/// Runs a program in the repository root; returns (exit code, stdout and stderr). Fails the test after `timeout`.
let private runInRepo (exe: string) (args: string list) (timeout: TimeSpan) =
    let start = ProcessStartInfo(exe, args, RedirectStandardOutput = true, RedirectStandardError = true,
                                 UseShellExecute = false, WorkingDirectory = repoRoot)
    use p = Process.Start start
    let out = p.StandardOutput.ReadToEndAsync()
    let err = p.StandardError.ReadToEndAsync()
    if not (p.WaitForExit timeout) then
        p.Kill true
        failtestf "%s %s: still running after %O" exe (String.concat " " args) timeout
    p.WaitForExit()
    p.ExitCode, out.Result + err.Result

/// Runs a bash script of the repository.
let runRepoScript (script: string) (args: string list) (timeout: TimeSpan) = runInRepo "bash" (Path.Combine(repoRoot, script) :: args) timeout

/// Runs an F# script of the repository with `dotnet fsi`.
let runDotnetFsi (script: string) (args: string list) (timeout: TimeSpan) = runInRepo "dotnet" ("fsi" :: Path.Combine(repoRoot, script) :: args) timeout

/// The runners reference the CLI's Release build. A Release test program was built together with it (the test project
/// references the CLI), so the runners need not rebuild; from a Debug test build they build Release themselves.
let buildArgs = if AppContext.BaseDirectory.Replace('\\', '/').Contains "/bin/Release/" then [ "--no-build" ] else []

/// Whether the runner will find chromium (it never installs it with --no-install, which the tests pass).
let chromiumOnPath =
    let dirs = (Environment.GetEnvironmentVariable "PATH" |> Option.ofObj |> Option.defaultValue "").Split ':'
    [ "chromium"; "chromium-browser"; "google-chrome" ]
    |> List.exists (fun exe -> dirs |> Array.exists (fun d -> d <> "" && File.Exists(Path.Combine(d, exe))))

let private hasError (executedNotebook: string) =
    File.ReadAllText executedNotebook |> fun text -> text.Contains "\"output_type\": \"error\""

let private pngSignature = [| 0x89uy; 0x50uy; 0x4Euy; 0x47uy |]

let private notebookCell (source: string) =
    sprintf """{"cell_type": "code", "execution_count": null, "metadata": {"dotnet_interactive": {"language": "fsharp"}, "polyglot_notebook": {"kernelName": "fsharp"}}, "outputs": [], "source": [%s]}"""
        (Text.Json.JsonSerializer.Serialize source)

/// A Polyglot F# notebook with the given cells (the metadata dotnet-repl reads).
let polyglotNotebook (cells: string list) =
    sprintf """{"cells": [%s], "metadata": {"kernelspec": {"display_name": ".NET (F#)", "language": "F#", "name": ".net-fsharp"}, "language_info": {"name": "F#"}, "polyglot_notebook": {"kernelInfo": {"defaultKernelName": "fsharp", "items": [{"aliases": [], "languageName": "fsharp", "name": "fsharp"}]}}}, "nbformat": 4, "nbformat_minor": 5}"""
        (cells |> List.map notebookCell |> String.concat ", ")

[<Tests>]
let notebookTests =
    testSequenced <| testList "Notebooks" [
        testCase "01-advantages reruns headless and writes its charts as HTML with plotly.js inline, and PNG where chromium is" <| fun () ->
            use out = new TempDir()
            let code, output = runRepoScript "scripts/run-notebooks.sh" (buildArgs @ [ "--no-install"; "--out"; out.Path; "01-advantages" ]) (TimeSpan.FromMinutes 5.0)
            Expect.equal code 0 (sprintf "run-notebooks.sh exit code; output:\n%s" output)
            Expect.stringContains output "ok      01-advantages" "the runner reports the notebook as ok"
            let executed = out.File "01-advantages.ipynb"
            Expect.isTrue (File.Exists executed) "the executed notebook is written"
            Expect.isFalse (hasError executed) "no cell of the executed notebook has an error output"
            for chart in [ "single-reward"; "guideline-rewards"; "grpo-vs-gba"; "all-right"; "lambda-sweep" ] do
                let html = Path.Combine(out.Path, "01-advantages", chart + ".html")
                Expect.isTrue (File.Exists html) (sprintf "%s is written" html)
                let text = File.ReadAllText html
                Expect.stringContains text "plotly.js v" (sprintf "%s embeds plotly.js (no CDN: the machines running it may be offline)" html)
                Expect.isFalse (text.Contains "<script src=") (sprintf "%s loads no external script" html)
                let png = Path.ChangeExtension(html, ".png")
                if chromiumOnPath then
                    Expect.isTrue (File.Exists png) (sprintf "%s is rendered (chromium is on PATH)" png)
                    Expect.sequenceEqual (File.ReadAllBytes(png) |> Array.truncate 4) pngSignature (sprintf "%s is a PNG" png)
            Expect.isTrue (File.Exists(Path.Combine(out.Path, "01-advantages", "advantages.md"))) "the advantage table is written"

        testCase "02-rl-curves and 04-main-results read a run in the pipeline's layout: per-seed RL curves, experts evaluated on their own specialty" <| fun () ->
            use dir = new TempDir()
            let run = dir.File "sample-run"
            let code, output = runDotnetFsi "scripts/dev/make-sample-run.fsx" [ run ] (TimeSpan.FromMinutes 3.0)
            Expect.equal code 0 (sprintf "making the sample run; output:\n%s" output)
            Expect.isTrue (File.Exists(Path.Combine(run, "metrics", "rl-pediatrics-grpo-seed2.jsonl"))) "the sample run has the extra RL seeds' curves"
            let code, output =
                runRepoScript "scripts/run-notebooks.sh" (buildArgs @ [ "--no-install"; "--run"; run; "--out"; dir.File "out"; "02-rl-curves"; "04-main-results" ]) (TimeSpan.FromMinutes 5.0)
            Expect.equal code 0 (sprintf "run-notebooks.sh exit code; output:\n%s" output)
            let seeds = File.ReadAllText(dir.File "out/02-rl-curves/rl-seeds.md")
            Expect.stringContains seeds "| pediatrics       | grpo      | 2    |" "the seed table lists seed 2 of each curve, parsed from -seed2"
            Expect.isFalse (seeds.Contains "seed2 ") "no '-seed<k>' is left in an advantage's name"
            let main = File.ReadAllText(dir.File "out/04-main-results/main-results.md")
            Expect.stringContains main "## Experts against the base on their own specialty" "the experts are compared with the base on their own specialty"
            Expect.stringContains main "## What the merged model keeps of each expert" "and the merged model with each expert"
            Expect.stringContains main "| pediatrics-sft" "the by-specialty table lists an expert evaluated on one specialty only"

        testCase "a notebook loads TorchSharp through NotebookKit; a failing cell makes the runner fail and name the error" <| fun () ->
            use dir = new TempDir()
            let notebook = dir.File "failing.ipynb"
            File.WriteAllText(notebook, polyglotNotebook [
                "#load \"NotebookKit.fsx\"" // the runner runs notebooks from notebooks/, as an editor does
                "let total = TorchSharp.torch.arange(4L).sum().item<int64>()\nprintfn \"torch sum = %d\" total"
                "if total = 6L then failwith \"deliberate failure in cell 3\"" ])
            let code, output =
                runRepoScript "scripts/run-notebooks.sh" (buildArgs @ [ "--no-install"; "--out"; dir.File "out"; notebook ]) (TimeSpan.FromMinutes 3.0)
            Expect.equal code 1 (sprintf "run-notebooks.sh exit code; output:\n%s" output)
            Expect.stringContains output "FAILED  failing" "the runner names the failed notebook"
            Expect.stringContains output "deliberate failure in cell 3" "the runner prints the cell's error"
            let executed = File.ReadAllText(dir.File "out/failing.ipynb")
            Expect.stringContains executed "torch sum = 6" "TorchSharp ran in the notebook (its native library loaded from the build)"
            Expect.isTrue (hasError (dir.File "out/failing.ipynb")) "the executed notebook keeps the error output"
    ]

[<Tests>]
let scriptTests =
    testSequenced <| testList "Scripts" [
        testCase "every F# script of scripts/ runs with dotnet fsi" <| fun () ->
            let code, output = runRepoScript "scripts/run-scripts.sh" buildArgs (TimeSpan.FromMinutes 5.0)
            Expect.equal code 0 (sprintf "run-scripts.sh exit code; output:\n%s" output)
            Expect.stringContains output "ok      new-advantage.fsx" "the new-advantage prototype runs"
            Expect.stringContains output "ok      merge-experiment.fsx" "the merge experiment runs (TorchSharp under dotnet fsi)"
            Expect.stringContains output "ok      dev/make-sample-run.fsx" "the sample-run generator runs"
            Expect.stringContains output "ok      inspect-data.fsx" "the data inspection runs on a generated MedSynth set"
            Expect.stringContains output "ok      trace-skills.fsx" "the trace-skill breakdown parses the reference traces of a generated set"
    ]
