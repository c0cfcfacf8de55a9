module MMedExpert.Tests.DataTests

open System
open System.IO
open System.Security.Cryptography
open System.Text.Json.Nodes
open Expecto
open MMedExpert.Data
open MMedExpert.Data.Schema
open MMedExpert.Data.MedSynth
open MMedExpert.Data.Benchmarks

let private fixtures = Path.Combine(__SOURCE_DIRECTORY__, "..", "fixtures", "benchmarks") |> Path.GetFullPath

let private tempDir (name: string) = Directory.CreateTempSubdirectory($"mmx-{name}").FullName

/// A small MedSynth set, generated once for the tests that only read it (6 balanced blocks of 64).
let private small = lazy (
    let dir = Path.Combine(tempDir "medsynth", "set")
    let struct (report, _) = MedSynthGenerator.Write(dir, MedSynthOptions(N = 384, Seed = 7UL, ImageSize = 56))
    dir, report)

let private allItems (dir: string) =
    Vocabulary.Splits |> Seq.collect (fun s -> (MedItemLoader.Load(Path.Combine(dir, s + ".jsonl"))).Items) |> Seq.toList

let private hashes (dir: string) =
    Directory.GetFiles(dir, "*", SearchOption.AllDirectories)
    |> Array.map (fun f -> Path.GetRelativePath(dir, f), Convert.ToHexString(SHA256.HashData(File.ReadAllBytes f)))
    |> Array.sortBy fst

/// Writes lines to a JSONL file next to a copy of one valid item's image; returns the path.
let private jsonlWith (lines: string list) =
    let dir, _ = small.Force()
    let d = tempDir "jsonl"
    Directory.CreateDirectory(Path.Combine(d, "images")) |> ignore
    for f in Directory.GetFiles(Path.Combine(dir, "images")) |> Array.sort |> Array.truncate 8 do
        File.Copy(f, Path.Combine(d, "images", Path.GetFileName f))
    let path = Path.Combine(d, "items.jsonl")
    File.WriteAllLines(path, lines)
    path

/// A valid item line (the first of sft.jsonl, whose image is among the copied ones), edited by `edit`.
let private validLine (edit: JsonObject -> unit) =
    let dir, _ = small.Force()
    let first = File.ReadLines(Path.Combine(dir, "sft.jsonl")) |> Seq.head
    let node = JsonNode.Parse(first).AsObject()
    let image = (node["images"].AsArray()[0]).GetValue<string>()
    if not (File.Exists(Path.Combine(dir, image))) then failwith "fixture image missing"
    edit node
    node.ToJsonString()

let private dataError (f: unit -> unit) : DataException =
    try f (); failwith "expected a DataException"
    with :? DataException as e -> e

[<Tests>]
let tests =
    testList "Data" [
        testList "loader" [
            test "a generated file loads with every field validated" {
                let dir, _ = small.Force()
                let r = MedItemLoader.Load(Path.Combine(dir, "sft.jsonl"))
                Expect.equal r.Summary.Skipped 0 "nothing skipped"
                Expect.isGreaterThan r.Items.Count 100 "items"
                Expect.isTrue (r.Items |> Seq.forall (fun i -> i.Split = Vocabulary.Sft)) "split field matches the file"
            }

            test "a malformed JSON line names file:line" {
                let path = jsonlWith [ validLine ignore; "{\"id\": \"x\", " ]
                let e = dataError (fun () -> MedItemLoader.Load path |> ignore)
                Expect.stringContains e.Message $"{path}:2" "file:line"
                Expect.stringContains e.Message "malformed JSON" "what is wrong"
            }

            test "a missing field names file:line and the field" {
                let path = jsonlWith [ validLine (fun o -> o.Remove "question" |> ignore) ]
                let e = dataError (fun () -> MedItemLoader.Load path |> ignore)
                Expect.stringContains e.Message $"{path}:1: field 'question': missing" "message"
                Expect.equal e.Field "question" "field"
            }

            test "a bad option letter names the field and the letter" {
                let path = jsonlWith [ validLine (fun o -> o["options"].AsObject()["F"] <- JsonValue.Create "Other") ]
                let e = dataError (fun () -> MedItemLoader.Load path |> ignore)
                Expect.stringContains e.Message $"{path}:1: field 'options'" "file:line and field"
                Expect.stringContains e.Message "bad option letter 'F'" "the letter"
            }

            test "a missing image names file:line and the image path" {
                let path = jsonlWith [ validLine (fun o -> o["images"] <- JsonArray(JsonValue.Create "images/nope.png")) ]
                let e = dataError (fun () -> MedItemLoader.Load path |> ignore)
                Expect.stringContains e.Message $"{path}:1: field 'images'" "file:line and field"
                Expect.stringContains e.Message "images/nope.png" "the image path"
            }

            test "answer, reasoning and pre-test probability are checked against each other" {
                let wrongAnswer = jsonlWith [ validLine (fun o -> o["answer"] <- JsonValue.Create "Z") ]
                Expect.stringContains (dataError (fun () -> MedItemLoader.Load wrongAnswer |> ignore)).Message "field 'answer'" "answer not an option"
                let badTrace = jsonlWith [ validLine (fun o -> o["reasoning"] <- JsonValue.Create "B") ]
                Expect.stringContains (dataError (fun () -> MedItemLoader.Load badTrace |> ignore)).Message "field 'reasoning'" "trace format"
                let noPretest =
                    jsonlWith [ validLine (fun o ->
                        o["perspective"] <- JsonValue.Create "bayesian"
                        o["guideline"].AsObject()["pretest_probability"] <- null) ]
                Expect.stringContains (dataError (fun () -> MedItemLoader.Load noPretest |> ignore)).Message "field 'guideline.pretest_probability'" "bayesian needs it"
                let badSpecialty = jsonlWith [ validLine (fun o -> o["specialty"] <- JsonValue.Create "cardiology") ]
                Expect.stringContains (dataError (fun () -> MedItemLoader.Load badSpecialty |> ignore)).Message "field 'specialty'" "closed set"
            }

            test "skip-bad skips and counts bad lines by field" {
                let good = validLine ignore
                let path = jsonlWith [ good; "not json"; validLine (fun o -> o["id"] <- JsonValue.Create "other"; o.Remove "split" |> ignore); "" ]
                let r = MedItemLoader.Load(path, skipBad = true)
                Expect.equal r.Items.Count 1 "one good line"
                Expect.equal r.Summary.Skipped 2 "two skipped"
                Expect.equal r.Summary.SkippedByField["split"] 1 "by field"
                Expect.equal r.Summary.SkippedByField["(line)"] 1 "whole-line problems"
                Expect.equal r.Summary.FirstProblems.Count 2 "messages kept"
            }

            test "a duplicate id is an error on the second line" {
                let path = jsonlWith [ validLine ignore; validLine ignore ]
                let e = dataError (fun () -> MedItemLoader.Load path |> ignore)
                Expect.stringContains e.Message $"{path}:2: field 'id': duplicate" "message"
            }
        ]

        testList "medsynth" [
            test "same seed gives byte-identical files; another seed does not" {
                let o = MedSynthOptions(N = 96, Seed = 3UL, ImageSize = 56)
                let a, b, c = tempDir "a", tempDir "b", tempDir "c"
                MedSynthGenerator.Write(a, o) |> ignore
                MedSynthGenerator.Write(b, o) |> ignore
                MedSynthGenerator.Write(c, MedSynthOptions(N = 96, Seed = 4UL, ImageSize = 56)) |> ignore
                let ha, hb, hc = hashes a, hashes b, hashes c
                Expect.equal ha.Length (96 + 5) "96 images, 4 splits, report"
                Expect.sequenceEqual ha hb "identical bytes"
                Expect.notEqual ha hc "another seed changes the data"
            }

            test "each modality alone is near chance, both together give 100%" {
                let _, r = small.Force()
                Expect.isLessThanOrEqual r.TextOnly.InSample 0.30 "text-only (Bayes-optimal on the text findings)"
                Expect.isLessThanOrEqual r.ImageOnly.InSample 0.30 "image-only (Bayes-optimal on the image findings)"
                Expect.isLessThanOrEqual r.TextOnly.HeldOut.Value 0.40 "text-only held out"
                Expect.isLessThanOrEqual r.ImageOnly.HeldOut.Value 0.40 "image-only held out"
                Expect.equal r.FullRule 1.0 "full-information rule"
                Expect.equal r.TextReadbackAgreement 1.0 "text carries the intended clinical findings"
                Expect.equal r.ImageReadbackAgreement 1.0 "drawn scene carries the intended image findings"
                Expect.isLessThan r.MajorityLetter 0.30 "no letter bias"
            }

            test "an imaging report states both image findings in the text, and then the text alone suffices" {
                let o = MedSynthOptions(N = 128, Seed = 5UL, ImageSize = 56, ImagingReport = true)
                let items = MedSynthGenerator.Generate o
                for g in items do
                    let sc = Scenario.For g.Item.Specialty
                    let expected = $"{MedSynthGenerator.ReportPrefix}{sc.First.Image.Describe g.Latent.Image1}; {sc.Second.Image.Describe g.Latent.Image2}."
                    Expect.stringContains g.Item.Question expected $"{g.Item.Id} states its latent image findings"
                    let struct (read1, read2) = VignetteReader.ReadReport(g.Item.Specialty, g.Item.Question).Value
                    Expect.equal (read1, read2) (g.Latent.Image1, g.Latent.Image2) "read back"
                let r = SynthesisReport.Compute(items, o)
                Expect.equal r.TextOnly.InSample 1.0 "text-only rule reads the report"
                Expect.isLessThanOrEqual r.ImageOnly.InSample 0.30 "the image alone still says little"
                let plain = MedSynthGenerator.Generate(MedSynthOptions(N = 128, Seed = 5UL, ImageSize = 56))
                Expect.isTrue (plain |> Array.forall (fun g -> not (g.Item.Question.Contains MedSynthGenerator.ReportPrefix))) "off by default"
                Expect.isFalse (VignetteReader.ReadReport(plain[0].Item.Specialty, plain[0].Item.Question).HasValue) "no report to read"
            }

            test "at difficulty 0 and 1 the drawn scenes and texts still carry the intended findings" {
                for d in [ 0.0; 1.0 ] do
                    let items = MedSynthGenerator.Generate(MedSynthOptions(N = 128, Seed = 5UL, Difficulty = d, ImageSize = 56))
                    let r = SynthesisReport.Compute(items, MedSynthOptions(N = 128, Seed = 5UL, Difficulty = d, ImageSize = 56))
                    Expect.equal r.ImageReadbackAgreement 1.0 $"image findings at difficulty {d}"
                    Expect.equal r.TextReadbackAgreement 1.0 $"text findings at difficulty {d}"
                    Expect.equal r.FullRule 1.0 $"full rule at difficulty {d}"
            }

            test "the XOR design: per specialty, each text cell and each image cell meets every diagnosis equally often" {
                let dir, _ = small.Force()
                let items = allItems dir
                for sc in Scenario.All do
                    let mine = items |> List.filter (fun i -> i.Specialty = sc.Specialty)
                    let textCell (i: MedItem) = VignetteReader.Read(i.Specialty, i.Question)
                    let imageCell (i: MedItem) =
                        i.Guideline.KeyFindings[0].StartsWith(sc.First.Image.WhenTrue), i.Guideline.KeyFindings[1].StartsWith(sc.Second.Image.WhenTrue)
                    for cellOf, name in [ (fun i -> string (textCell i)), "text"; (fun i -> string (imageCell i)), "image" ] do
                        for cell, members in mine |> List.groupBy cellOf do
                            let counts = members |> List.countBy (fun i -> i.AnswerText) |> List.map snd
                            Expect.equal (List.length counts) 4 $"{sc.Specialty} {name} cell {cell}: all four diagnoses"
                            Expect.equal (List.max counts) (List.min counts) $"{sc.Specialty} {name} cell {cell}: equally often"
            }

            test "splits: sft and rl are disjoint, the four files hold every item once" {
                let dir, r = small.Force()
                let items = allItems dir
                let ids s = items |> List.filter (fun i -> i.Split = s) |> List.map (fun i -> i.Id) |> Set.ofList
                Expect.isEmpty (Set.intersect (ids Vocabulary.Sft) (ids Vocabulary.Rl)) "disjoint"
                Expect.equal (items |> List.distinctBy (fun i -> i.Id) |> List.length) 384 "all items once"
                Expect.equal r.Splits[Vocabulary.Sft] 154 "40% sft"
                Expect.equal r.Splits[Vocabulary.Test] 38 "the rest in test"
            }

            test "traces mention the key findings, follow the steps in order and conclude with the answer" {
                let dir, _ = small.Force()
                for item in allItems dir do
                    let ok, think, tagged = ReasoningFormat.TryParse(item.Reasoning)
                    Expect.isTrue ok $"{item.Id}: format"
                    Expect.equal tagged item.Answer $"{item.Id}: answer tag"
                    for f in item.Guideline.KeyFindings do
                        Expect.stringContains think f $"{item.Id}: key finding '{f}'"
                    let positions = item.Guideline.GuidelineSteps |> Seq.map (fun s -> think.IndexOf(s + ":", StringComparison.Ordinal)) |> Seq.toList
                    Expect.isTrue (positions |> List.forall (fun p -> p >= 0)) $"{item.Id}: every step label present"
                    Expect.equal positions (List.sort positions) $"{item.Id}: steps in guideline order"
                    Expect.stringContains think $"Conclusion: {item.AnswerText}, option {item.Answer}." $"{item.Id}: conclusion"
                    if item.Perspective = Vocabulary.Bayesian then
                        Expect.equal item.Guideline.PretestProbability (Nullable 0.25) "pre-test probability"
                        Expect.stringContains think "Pre-test probability: 0.25" "states the pre-test probability"
                        Expect.stringContains think "Post-test probability: about 0.95" "states the update"
                    else Expect.isFalse item.Guideline.PretestProbability.HasValue "only bayesian items carry it"
            }

            test "images decode to the requested size; gray for X-ray/MRI, RGB for fundus/histology" {
                let dir, _ = small.Force()
                for item in allItems dir |> List.take 24 do
                    let bytes = File.ReadAllBytes(Path.Combine(dir, item.Images[0]))
                    let img = StbImageSharp.ImageResult.FromMemory(bytes, StbImageSharp.ColorComponents.Default)
                    Expect.equal (img.Width, img.Height) (56, 56) "size"
                    let color = item.Specialty = Vocabulary.BrainSenses || item.Specialty = Vocabulary.OncologySurgery
                    Expect.equal img.SourceComp (if color then StbImageSharp.ColorComponents.RedGreenBlue else StbImageSharp.ColorComponents.Grey) "channels"
                    let rgb = MMedExpert.Core.Vision.ImageDecoder.Load(Path.Combine(dir, item.Images[0]))
                    Expect.equal (rgb.Width, rgb.Height) (56, 56) "the model's image decoder reads it as RGB"
            }

            test "the PNG encoder round-trips through a standard decoder" {
                let rng = SeededRandom(11UL)
                for channels in [ 1; 3 ] do
                    let px = Array.init (37 * 37 * channels) (fun i -> if i % 7 < 3 then 200uy else byte (rng.Int(0, 255)))
                    let img = StbImageSharp.ImageResult.FromMemory(PngEncoder.Encode(px, 37, 37, channels), StbImageSharp.ColorComponents.Default)
                    Expect.sequenceEqual img.Data px $"pixels ({channels} channels)"
            }

            test "the text reader recovers the clinical findings at the thresholds' edges (difficulty 1)" {
                for sc in Scenario.All do
                    for c1 in [ false; true ] do
                        for c2 in [ false; true ] do
                            for k in 0UL .. 20UL do
                                let v = Vignette.Write(sc, c1, c2, 1.0, SeededRandom(k))
                                Expect.equal (VignetteReader.Read(sc.Specialty, v.Text)) struct (c1, c2) $"{sc.Specialty}: {v.Text}"
            }

            test "bad options are refused with the option named" {
                let e = dataError (fun () -> MedSynthGenerator.Generate(MedSynthOptions(N = 10, Difficulty = 1.5)) |> ignore)
                Expect.stringContains e.Message "--difficulty" "names the option"
            }

            test "an item maps to reward annotations and to chat samples" {
                let dir, _ = small.Force()
                let item = allItems dir |> List.find (fun i -> i.Perspective = Vocabulary.Bayesian)
                let a = MedItemSamples.Annotations item
                Expect.equal a.Answer item.Answer "answer"
                Expect.equal a.Options[item.Answer] item.Options[item.Answer] "text"
                Expect.sequenceEqual a.KeyFindings item.Guideline.KeyFindings "findings"
                Expect.equal a.PretestProbability (Some 0.25) "pre-test"
                Expect.equal a.GuidelineSteps.Length item.Guideline.GuidelineSteps.Count "steps"
                let s = MedItemSamples.Training(item, dir, TraceStyle.Compact)
                Expect.stringContains s.UserText item.Question "question in the prompt"
                Expect.stringEnds s.AssistantText (sprintf "<answer>%s</answer>" item.AnswerText) "compact trace answers with the option's text"
                let compact = MedItemSamples.CompactFindings item
                Expect.equal compact.Count item.Guideline.KeyFindings.Count "one compact finding per key finding"
                for f, full in Seq.zip compact item.Guideline.KeyFindings do
                    Expect.stringStarts full f "a compact finding is the key finding without its detail"
                    Expect.isFalse (f.EndsWith ")") $"no detail left: {f}"
                    Expect.stringContains s.AssistantText f "every compact finding in the compact trace"
                // The pairings follow the decision table: the diagnosis index is 2·[first discordant] + [second discordant].
                let struct (d1, d2) = MedItemSamples.MedSynthPairings(item).Value
                Expect.equal (Scenario.For(item.Specialty).Diagnoses[Scenario.DiagnosisIndex(d1, d2)]) item.AnswerText "pairings give the answer"
                Expect.stringContains s.AssistantText $"Pairings: {Pairing.Word d1}, {Pairing.Word d2}." "pairings named"
                let c = MedItemSamples.Annotations(item, TraceStyle.Compact)
                Expect.sequenceEqual c.KeyFindings compact "compact annotations check the compact findings"
                let score = MMedExpert.Algebra.Rewards.GuidelineSpec.evaluate (MMedExpert.Algebra.Rewards.DefaultSpec.load ()) c (MMedExpert.Algebra.Rewards.Completion.OfText s.AssistantText)
                for p in score.Breakdown do
                    for (w, r) in p.Checks do
                        match MMedExpert.Algebra.Rewards.Check.kind w.Check with
                        | "answer" | "keyFindings" | "format" -> Expect.equal r.Score 1.0 $"{p.Perspective}: {MMedExpert.Algebra.Rewards.Check.kind w.Check} earned by the compact trace"
                        | _ -> ()
                Expect.equal (MedItemSamples.Training(item, dir)).AssistantText item.Reasoning "full trace is the item's"
            }
        ]

        testList "benchmarks" [
            test "MedXpertQA MM: dict and list options, string and list labels, images resolved" {
                let items = MedXpertQaLoader.Load(Path.Combine(fixtures, "medxpertqa", "test.jsonl"))
                Expect.equal (items |> Seq.map (fun i -> i.Id, i.Answer) |> Seq.toList) [ "MM-9001", "B"; "MM-9002", "D"; "MM-9003", "C" ] "ids and labels"
                let two = items[1]
                Expect.equal two.Options["D"] "Neurosurgical referral" "list-of-{letter, content} options"
                Expect.equal two.ImagePaths.Count 2 "two images"
                Expect.isTrue (two.ImagePaths |> Seq.forall File.Exists) "absolute existing paths"
                Expect.equal (two.Group GroupKeys.BodySystem) "Nervous" "body system"
                Expect.equal (two.Group GroupKeys.QuestionType) "Reasoning" "question type"
                Expect.isTrue two.QuestionListsOptions "choices are in the question text"
            }

            test "OmniMedVQA: answer letter from gt_answer text, 2–4 options, 'modality' spelling, image root above QA_information" {
                let items = OmniMedVqaLoader.Load(Path.Combine(fixtures, "omnimedvqa", "QA_information", "Open-access"))
                let byId = items |> Seq.map (fun i -> i.Id, i) |> Map.ofSeq
                Expect.equal byId["Demo_Fundus_0000"].Answer "B" "exact text match"
                Expect.equal byId["Demo_Fundus_0001"].Options.Count 2 "options C and D absent"
                Expect.equal byId["Demo_Chest_CT_0000"].Answer "C" "case-insensitive match ('lung' ~ 'Lung')"
                Expect.equal (byId["Demo_Chest_CT_0000"].Group GroupKeys.Modality) "CT" "the 'modality' spelling"
                Expect.equal (byId["Demo_Fundus_0000"].Group GroupKeys.Modality) "Fundus Photography" "modality_type"
                Expect.isTrue (items |> Seq.forall (fun i -> File.Exists i.ImagePaths[0])) "images found"
            }

            test "MedXpertQA errors name file:line, item and field" {
                let d = tempDir "mxq"
                for f in Directory.GetFiles(Path.Combine(fixtures, "medxpertqa", "images")) do File.Copy(f, Path.Combine(d, Path.GetFileName f))
                let lines = File.ReadAllLines(Path.Combine(fixtures, "medxpertqa", "test.jsonl"))
                let write (edit: JsonObject -> unit) =
                    let node = JsonNode.Parse(lines[1]).AsObject()
                    edit node
                    let p = Path.Combine(d, "test.jsonl")
                    File.WriteAllLines(p, [ lines[0]; node.ToJsonString() ])
                    p
                let check edit (fragment: string) =
                    let p = write edit
                    let e = dataError (fun () -> MedXpertQaLoader.Load p |> ignore)
                    Expect.stringContains e.Message $"{p}:2: item 'MM-9002': field '{fragment}'" e.Message
                check (fun o -> o["label"] <- JsonValue.Create "F") "label"
                check (fun o -> o["images"] <- JsonArray(JsonValue.Create "missing.png")) "images"
                check (fun o -> o["options"] <- JsonValue.Create "A-E") "options"
                check (fun o -> o.Remove "body_system" |> ignore) "body_system"
                check (fun o -> o["options"].AsArray().Add(JsonNode.Parse("""{"letter": "F", "content": "x"}"""))) "options"
            }

            test "OmniMedVQA errors name file, item index, question_id and field" {
                let d = tempDir "omni"
                let qa = Path.Combine(d, "QA_information", "Open-access")
                Directory.CreateDirectory qa |> ignore
                Directory.CreateDirectory(Path.Combine(d, "Images", "Demo Fundus")) |> ignore
                for f in Directory.GetFiles(Path.Combine(fixtures, "omnimedvqa", "Images", "Demo Fundus")) do
                    File.Copy(f, Path.Combine(d, "Images", "Demo Fundus", Path.GetFileName f))
                let source = File.ReadAllText(Path.Combine(fixtures, "omnimedvqa", "QA_information", "Open-access", "Demo Fundus.json"))
                let check (edit: JsonObject -> unit) (field: string) =
                    let arr = JsonNode.Parse(source).AsArray()
                    edit (arr[1].AsObject())
                    let p = Path.Combine(qa, "Demo Fundus.json")
                    File.WriteAllText(p, arr.ToJsonString())
                    let e = dataError (fun () -> OmniMedVqaLoader.Load qa |> ignore)
                    Expect.stringContains e.Message $"{p}: item 1 ('Demo_Fundus_0001'): field '{field}'" e.Message
                check (fun o -> o["gt_answer"] <- JsonValue.Create "Maybe") "gt_answer"
                check (fun o -> o.Remove "option_A" |> ignore) "option_A"
                check (fun o -> o["image_path"] <- JsonValue.Create "Images/Demo Fundus/none.png") "image_path"
                check (fun o -> o.Remove "modality_type" |> ignore) "modality_type"
                check (fun o -> o["option_D"] <- JsonValue.Create "Unsure") "option_C"
            }

            test "MedSynth items map to evaluation items with specialty, modality and question type" {
                let dir, _ = small.Force()
                let items = MedSynthBench.Load(Path.Combine(dir, "test.jsonl"))
                Expect.isGreaterThan items.Count 10 "items"
                let i = items[0]
                Expect.isTrue (File.Exists i.ImagePaths[0]) "absolute image path"
                Expect.isSome (Option.ofObj (i.Group GroupKeys.Specialty)) "specialty"
                Expect.isSome (Option.ofObj (i.Group GroupKeys.Modality)) "modality"
                Expect.isFalse i.QuestionListsOptions "options go in the prompt"
            }

            test "mmx data synth and data check run; a bad file exits with 2" {
                let out = Path.Combine(tempDir "cli", "set")
                Expect.equal (MMedExpert.Cli.MmxApp.Run([| "data"; "synth"; "--out"; out; "--n"; "64"; "--image-size"; "32" |])) 0 "synth"
                Expect.isTrue (File.Exists(Path.Combine(out, "report.json"))) "report written"
                Expect.equal (MMedExpert.Cli.MmxApp.Run([| "data"; "check"; out |])) 0 "check the folder"
                let bad = Path.Combine(out, "bad.jsonl")
                File.WriteAllText(bad, "{}\n")
                Expect.equal (MMedExpert.Cli.MmxApp.Run([| "data"; "check"; bad |])) 2 "bad file"
                Expect.equal (MMedExpert.Cli.MmxApp.Run([| "data"; "check"; bad; "--skip-bad" |])) 0 "skip-bad"
            }
        ]
    ]
