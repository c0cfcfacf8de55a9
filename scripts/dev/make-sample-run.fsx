// DEVELOPMENT ONLY: writes a FAKE run folder, with made-up numbers in the shapes of docs/run-layout.md, so that the
// notebooks that read a run (02–05) can be developed and tested without waiting for `./mmx pipeline`.
// Nothing here is a result. The folder carries SAMPLE-RUN-FAKE-DATA; the notebooks print a warning and mark every chart
// title, and scripts/run-notebooks.sh never picks such a folder by default (pass it with --run).
//
//   dotnet fsi scripts/dev/make-sample-run.fsx OUT_DIR [SEED]
//
// Writes, in the pipeline's layout: config.json, metrics/rl-<specialty>-<gba|grpo>[-seed<k>].jsonl (three RL seeds),
// merged/<method>/conflicts.json (the merge code's ConflictReport shape), eval/<model>/results.json (the eval harness's
// EvalResults shape; each expert evaluated on its own specialty's items only, as the pipeline does).
open System
open System.Collections.Generic
open System.IO
open System.Text.Json

let args = fsi.CommandLineArgs |> Array.skip 1
if args.Length < 1 || args.Length > 2 then
    eprintfn "usage: dotnet fsi scripts/dev/make-sample-run.fsx OUT_DIR [SEED]"
    exit 2
let outDir = Path.GetFullPath args[0]
let seed = if args.Length = 2 then int args[1] else 7
if Directory.Exists outDir && Directory.EnumerateFileSystemEntries outDir |> Seq.isEmpty |> not
   && not (File.Exists(Path.Combine(outDir, "SAMPLE-RUN-FAKE-DATA"))) then
    eprintfn "%s: exists and is not a sample run; refusing to write fake data into it" outDir
    exit 2

let rng = Random seed
let noise scale = (rng.NextDouble() - 0.5) * 2.0 * scale
let clamp01 x = max 0.0 (min 1.0 x)
let json = JsonSerializerOptions(WriteIndented = true)

let write (relative: string) (content: string) =
    let path = Path.Combine(outDir, relative)
    Directory.CreateDirectory(Path.GetDirectoryName path) |> ignore
    let temp = path + ".tmp"
    File.WriteAllText(temp, content)
    File.Move(temp, path, true)

let specialties = [ "adult_medicine"; "pediatrics"; "brain_senses"; "oncology_surgery" ]
let perspectives = [ "differential"; "intuitive"; "analytical"; "bayesian" ]
let advantages = [ "gba"; "grpo" ]
let methods = [ "conflict_aware"; "ties"; "task_arithmetic" ]
// What the pipeline merges (MergeStage.Merges): every method on the experts after the first advantage, and the first
// method on the experts after each other advantage; merged/<method>-<advantage>/, eval/merged-<method>-<advantage>/.
let merges = [ for m in methods -> m, "gba" ] @ [ "conflict_aware", "grpo" ]

write "SAMPLE-RUN-FAKE-DATA" "This folder was written by scripts/dev/make-sample-run.fsx. Every number in it is made up, to develop the notebooks. It is not a result.\n"
// Only the keys the notebooks read, in PipelineConfig's snake_case: the first advantage and merge method are the method.
write "config.json"
    (JsonSerializer.Serialize(
        {| name = "sample-fake"; note = "FAKE sample run for notebook development (scripts/dev/make-sample-run.fsx)"; seed = seed
           gba = {| advantages = advantages |}; merge = {| methods = methods |} |}, json) + "\n")

// ---- RL curves ---------------------------------------------------------------------------------------------------
let rlSeeds = 3
for s in specialties do
    for adv in advantages do
      for k in 0 .. rlSeeds - 1 do
        let lines =
            [ for step in 0 .. 11 ->
                let progress = float step / 11.0
                let d = Dictionary<string, obj>()
                d["step"] <- step
                let rewards =
                    [ for p in perspectives -> p, clamp01 (0.35 + 0.3 * progress * (if adv = "gba" then 1.0 else 0.8) + noise 0.05) ]
                d["reward_mean"] <- (rewards |> List.averageBy snd)
                for p, r in rewards do d["reward_" + p] <- r
                d["accuracy"] <- clamp01 (0.3 + 0.35 * progress + noise 0.05)
                d["format_rate"] <- clamp01 (0.6 + 0.4 * progress + noise 0.03)
                d["advantage_mean"] <- noise 1e-3
                d["advantage_std"] <- 0.9 + noise 0.1
                d["kl"] <- 0.002 * float step + abs (noise 0.002)
                d["clip_fraction"] <- abs (noise 0.05)
                d["entropy"] <- 1.2 - 0.3 * progress + noise 0.05
                d["response_length"] <- 40.0 + 10.0 * progress + noise 4.0
                d["loss"] <- noise 0.05
                d["lr"] <- 5e-4
                d["generation_s"] <- 3.0 + noise 0.5
                d["learning_s"] <- 1.0 + noise 0.2
                JsonSerializer.Serialize d ]
        write (sprintf "metrics/rl-%s-%s%s.jsonl" s adv (if k = 0 then "" else sprintf "-seed%d" k)) (String.concat "\n" lines + "\n")

// ---- merge conflicts (Algebra.Merge.Conflicts.ConflictReport, camelCase) ------------------------------------------
let moduleNames = [ "self_attn.q_proj"; "self_attn.k_proj"; "self_attn.v_proj"; "self_attn.o_proj"; "mlp.gate_proj"; "mlp.up_proj"; "mlp.down_proj" ]
let nExperts = specialties.Length
let conflictReport () =
    let modules =
      [ for layer in 0 .. 3 do
          for m in moduleNames ->
              let norms = [| for _ in 1 .. nExperts -> 0.5 + rng.NextDouble() |]
              let cosine =
                  Array.init nExperts (fun i -> Array.init nExperts (fun j -> if i = j then 1.0 else 0.0))
              for i in 0 .. nExperts - 1 do
                  for j in i + 1 .. nExperts - 1 do
                      let c = Math.Round(0.1 + 0.15 * float layer / 3.0 + noise 0.1, 4)
                      cosine[i][j] <- c
                      cosine[j][i] <- c
              let mean = Array.average norms
              {| ``module`` = sprintf "model.layers.%d.%s" layer m
                 layer = layer
                 layerKey = sprintf "model.layers.%d" layer
                 shape = [| 64L; 8L |]
                 contestedEntries = 300L + int64 (rng.Next 200)
                 signDisagreement = clamp01 (0.2 + 0.1 * float layer / 3.0 + (if m.StartsWith "mlp" then 0.08 else 0.0) + noise 0.05)
                 cosine = cosine
                 norms = norms
                 relativeNorms = norms |> Array.map (fun n -> n / mean)
                 normRatio = Array.max norms / Array.min norms |} ]
    let layers =
      modules
      |> List.groupBy (fun m -> m.layerKey)
      |> List.map (fun (key, ms) ->
          {| layer = ms.Head.layer
             layerKey = key
             modules = ms.Length
             contestedEntries = ms |> List.sumBy (fun m -> m.contestedEntries)
             signDisagreement = ms |> List.averageBy (fun m -> m.signDisagreement)
             meanCosine = Array.init nExperts (fun i -> Array.init nExperts (fun j -> ms |> List.averageBy (fun m -> m.cosine[i][j])))
             maxNormRatio = ms |> List.map (fun m -> m.normRatio) |> List.max |})
    JsonSerializer.Serialize({| experts = specialties; modules = modules; layers = layers |}, json) + "\n"
// The conflicts describe the experts merged, so every method merging the same experts writes the same report.
let reports = dict [ for adv in advantages -> adv, conflictReport () ]
for m, adv in merges do write (sprintf "merged/%s-%s/conflicts.json" m adv) reports[adv]

// ---- evaluation (Data.Eval.EvalResults) ---------------------------------------------------------------------------
let n = 400
let score (acc: float) (count: int) =
    let correct = int (Math.Round(acc * float count))
    let p = float correct / float count
    let half = 1.96 * sqrt (p * (1.0 - p) / float count)
    {| n = count; correct = correct; accuracy = p; ci95 = {| low = clamp01 (p - half); high = clamp01 (p + half) |} |}
/// Results over the given specialties' items (n / 4 each), grouped by specialty.
let results (overall: float) (bySpecialty: (string * float) list) =
    let o = score overall (n / specialties.Length * bySpecialty.Length)
    let groups = Dictionary<string, obj>()
    for s, acc in bySpecialty do groups[s] <- score acc (n / specialties.Length)
    {| benchmark = "medsynth-test"; n = o.n; correct = o.correct; accuracy = o.accuracy; ci95 = o.ci95
       invalid_format_rate = clamp01 (0.1 - overall / 10.0 + noise 0.02); no_answer_rate = clamp01 (0.05 + noise 0.02)
       extraction = {| answer_tag = 350; last_letter = 30 |}
       by_group = dict [ ("specialty", box groups) ]
       bootstrap = {| resamples = 1000; seed = seed; level = 0.95; method = "percentile" |}
       resumed = 0 |}
let evalModel (name: string) (overall: float) (bySpecialty: (string * float) list) =
    write (sprintf "eval/%s/results.json" name) (JsonSerializer.Serialize(results overall bySpecialty, json) + "\n")

let around (x: float) = [ for s in specialties -> s, clamp01 (x + noise 0.08) ]
evalModel "base" 0.30 (around 0.30)
for s in specialties do
    // An expert is evaluated on its own specialty only.
    for name, acc in [ "sft", 0.45; "gba", 0.55; "grpo", 0.50 ] do
        let a = clamp01 (acc + noise 0.05)
        evalModel (sprintf "%s-%s" s name) a [ s, a ]
evalModel "merged-conflict_aware-gba" 0.52 (around 0.52)
evalModel "merged-ties-gba" 0.49 (around 0.49)
evalModel "merged-task_arithmetic-gba" 0.45 (around 0.45)
evalModel "merged-conflict_aware-grpo" 0.48 (around 0.48)
for k in 1 .. rlSeeds - 1 do
    evalModel (sprintf "merged-conflict_aware-gba-seed%d" k) 0.52 (around 0.52)
    evalModel (sprintf "merged-conflict_aware-grpo-seed%d" k) 0.48 (around 0.48)

printfn "wrote a FAKE sample run (made-up numbers, for notebook development only) to %s" outDir
