module MMedExpert.Tests.RewardSpecTests

open System
open System.IO
open Expecto
open FsCheck
open FsCheck.FSharp
open MMedExpert.Algebra.Advantages
open MMedExpert.Algebra.Rewards
open MMedExpert.Algebra.Rewards.Dsl

let private options = Map [ "A", "Pneumonia"; "B", "Pulmonary embolism"; "C", "Aortic dissection"; "D", "Aspiration pneumonia" ]

let private pe =
    { Annotations.Empty with
        Answer = "B"; Options = options
        KeyFindings = [ "tachycardia"; "hypoxia|low oxygen saturation"; "wedge-shaped opacity" ]
        GuidelineSteps = [ [ "tachycardia" ]; [ "d-dimer" ]; [ "ct angiography"; "ctpa" ] ]
        PretestProbability = Some 0.3; Specialty = "radiology"; QuestionType = "diagnosis"; Perspective = "bayesian" }

let private score (check: Check) (a: Annotations) (text: string) = (Check.evaluate check a (Completion.OfText text)).Score

let private wrap (think: string) (answer: string) = sprintf "<think>%s</think><answer>%s</answer>" think answer

let private expectThrowsSpec (f: unit -> unit) (fragments: string list) =
    let message =
        try f (); failwith "expected a GuidelineSpecException"
        with :? GuidelineSpecException as e -> e.Message
    for fragment in fragments do
        Expect.stringContains message fragment (sprintf "the error names '%s'" fragment)

let private differentialSteps =
    [ step "findings" [ "shows"; "reveals" ]
      step "differential" [ "differential"; "versus" ]
      step "discriminating test" [ "distinguishes"; "d-dimer" ]
      step "conclusion" [ "therefore"; "most likely" ] ]

// ---- generators for the spec properties ---------------------------------------------------------------------------

let private fragments =
    [ "The image shows a wedge-shaped opacity."; "Tachycardia and hypoxia are present."; "Differential: pneumonia versus PE."
      "A D-dimer distinguishes them."; "Pre-test probability 30%."; "The likelihood ratio of 8 gives a post-test probability of 75%."
      "Therefore the most likely diagnosis is PE."; "ctpa confirms it."; "Hmm."; "low oxygen saturation" ]

let private completionText =
    gen {
        let! n = Gen.choose (0, 6)
        let! parts = Gen.arrayOfLength n (Gen.elements fragments)
        let think = String.Join(" ", parts)
        let! answer = Gen.elements [ "B"; "A"; "(B)"; "Pulmonary embolism"; "A and B"; "" ]
        let! shape = Gen.choose (0, 3)
        return
            match shape with
            | 0 -> wrap think answer
            | 1 -> sprintf "  <think>\n%s\n</think>\n\n<answer> %s </answer>\n" think answer
            | 2 -> think + " Answer: " + answer
            | _ -> wrap think answer + " trailing"
    }

let private anyCheck =
    Gen.elements
        [ Format; Answer false; Answer true; KeyFindings; StepOrder(None, InOrderPrefix); StepOrder(None, LongestIncreasing)
          StepOrder(Some differentialSteps, InOrderPrefix); StepOrder(Some differentialSteps, LongestIncreasing)
          ProbabilityUpdate None; ProbabilityUpdate(Some 0.1); LengthBudget(Tokens, 40, 20); LengthBudget(Chars, 200, 0) ]

let private weight = Gen.choose (0, 1000) |> Gen.map (fun i -> float i / 100.0)
let private weightedCheck = Gen.map2 (fun c w -> { Check = c; Weight = w }) anyCheck weight

let private perspectiveGen =
    gen {
        let! checks = Gen.choose (1, 5) |> Gen.bind (fun n -> Gen.listOfLength n weightedCheck)
        let! extraWeight = weight
        // At least one positive weight, as validation requires.
        return perspective "p" ({ Check = Format; Weight = extraWeight + 0.01 } :: checks)
    }

let private name = Gen.elements [ "differential"; "intuitive"; "analytical"; "bayesian"; "Pattern ü"; "x\"quoted\"" ]

let private specGen =
    gen {
        let! n = Gen.choose (1, 4)
        let! names = Gen.shuffle [| "differential"; "intuitive"; "analytical"; "bayesian"; "other" |]
        let! perspectives = Gen.listOfLength n perspectiveGen
        let! prompt = Gen.elements [ ""; "Think step by step.\nThen answer."; "Use \"quotes\" and <tags>." ]
        let! factors = Gen.listOfLength 2 (Gen.map2 (fun (k: string) w -> k, w) name weight)
        let! boost = weight
        return
            { Name = "generated"; Description = "a generated spec"
              Perspectives = perspectives |> List.mapi (fun i p -> { p with Name = names[i]; Prompt = prompt })
              Weighting =
                { Base = Map.ofList factors
                  BySpecialty = Map [ "radiology", Map.ofList factors ]
                  ByQuestionType = Map [ "diagnosis", Map.ofList factors; "management", Map.empty ]
                  AnnotatedPerspectiveBoost = boost + 0.5 } }
    }

let private config = { FsCheckConfig.defaultConfig with maxTest = 300 }

[<Tests>]
let tests =
    testList "RewardSpecs" [
        testList "format check" [
            test "a think block then an answer block passes" { Expect.equal (score Format pe (wrap "reasoning" "B")) 1.0 "" }
            test "whitespace around and between the blocks is tolerated" {
                Expect.equal (score Format pe "\n  <think>\nreasoning\n</think>\n\n <answer>B</answer>\n") 1.0 ""
            }
            test "text after the answer block fails" { Expect.equal (score Format pe (wrap "r" "B" + " extra")) 0.0 "" }
            test "a missing answer block fails" { Expect.equal (score Format pe "<think>r</think> B") 0.0 "" }
            test "an empty think block fails" { Expect.equal (score Format pe (wrap "  " "B")) 0.0 "" }
            test "nested or repeated tags fail" {
                Expect.equal (score Format pe "<think>a<think>b</think><answer>B</answer>") 0.0 "nested think"
                Expect.equal (score Format pe (wrap "r" "B" + "<answer>C</answer>")) 0.0 "two answers"
            }
        ]

        testList "answer check" [
            test "option letters in the usual spellings are recognised" {
                for answer in [ "B"; "(B)"; "b"; "B."; "B. Pulmonary embolism"; "B) PE"; "The answer is B"; "option b"; "Pulmonary embolism" ] do
                    Expect.equal (score (Answer false) pe (wrap "r" answer)) 1.0 (sprintf "'%s' names B" answer)
            }
            test "a wrong option scores 0" {
                Expect.equal (score (Answer false) pe (wrap "r" "A")) 0.0 "A"
                Expect.equal (score (Answer false) pe (wrap "r" "Pneumonia")) 0.0 "option A's text"
            }
            test "the longest matching option text wins (aspiration pneumonia is not pneumonia)" {
                let a = { pe with Answer = "D" }
                Expect.equal (score (Answer false) a (wrap "r" "Aspiration pneumonia")) 1.0 "D"
                Expect.sequenceEqual (Check.predictedOptions a "aspiration pneumonia") [ "D" ] "only D"
            }
            test "hedging over several options gets 1/k with partial credit, 0 without" {
                Expect.equal (score (Answer false) pe (wrap "r" "A and B")) 0.0 "strict"
                Expect.equal (score (Answer true) pe (wrap "r" "A and B")) 0.5 "partial"
                Expect.equal (score (Answer true) pe (wrap "r" "A, C")) 0.0 "hedged without the right one"
            }
            test "the annotated answer may be the option text" {
                Expect.equal (score (Answer false) { pe with Answer = "pulmonary embolism" } (wrap "r" "B")) 1.0 ""
            }
            test "the answer is found without the format (answer cue)" {
                Expect.equal (score (Answer false) pe "I think. Final answer: B") 1.0 ""
                Expect.equal (score (Answer false) pe "no answer given at all") 0.0 ""
            }
            test "free-text answers match the reference phrase; partial credit is word F1" {
                let a = { Annotations.Empty with Answer = "left lower lobe pneumonia" }
                Expect.equal (score (Answer false) a (wrap "r" "It is a left lower lobe pneumonia.")) 1.0 "contains the phrase"
                Expect.equal (score (Answer false) a (wrap "r" "right lower lobe pneumonia")) 0.0 "strict"
                Expect.floatClose Accuracy.veryHigh (score (Answer true) a (wrap "r" "right lower lobe pneumonia")) 0.75 "F1 = 3/4"
            }
            test "an annotated answer that names no option is an error naming the field" {
                let message = try score (Answer false) { pe with Answer = "E" } (wrap "r" "B") |> ignore; "" with :? ArgumentException as e -> e.Message
                Expect.stringContains message "annotations.Answer 'E'" "names the field and value"
            }
        ]

        testList "key findings check" [
            test "scores the fraction mentioned, alternatives separated by |" {
                Expect.equal (score KeyFindings pe "tachycardia and low oxygen saturation") (2.0 / 3.0) "2 of 3"
                Expect.equal (score KeyFindings pe "Tachycardia, hypoxia; a wedge shaped opacity.") 1.0 "punctuation-insensitive"
            }
            test "matches whole words only" {
                Expect.equal (score KeyFindings { pe with KeyFindings = [ "ST elevation" ] } "a stable elevation") 0.0 "'st' is not 'stable'"
            }
            test "no annotated findings is vacuously satisfied" { Expect.equal (score KeyFindings { pe with KeyFindings = [] } "anything") 1.0 "" }
        ]

        testList "step order check" [
            let inOrder = "The film shows an opacity. Differential: A versus B. A D-dimer distinguishes them. Therefore B."
            let swapped = "Differential: A versus B. The film shows an opacity. A D-dimer distinguishes them. Therefore B."
            test "steps in guideline order score 1" {
                Expect.equal (score (StepOrder(Some differentialSteps, InOrderPrefix)) pe (wrap inOrder "B")) 1.0 "prefix"
                Expect.equal (score (StepOrder(Some differentialSteps, LongestIncreasing)) pe (wrap inOrder "B")) 1.0 "lis"
            }
            test "one step out of place: prefix stops there, LIS loses one step" {
                // Findings ("shows") come after the differential: the prefix finds findings, then no differential after
                // it, and stops at 1/4; the first mentions in order are findings-or-differential, test, conclusion: 3/4.
                Expect.equal (score (StepOrder(Some differentialSteps, InOrderPrefix)) pe (wrap swapped "B")) 0.25 "findings only"
                Expect.equal (score (StepOrder(Some differentialSteps, LongestIncreasing)) pe (wrap swapped "B")) 0.75 "3 of 4 in order"
            }
            test "a missing first step gives prefix 0" {
                Expect.equal (score (StepOrder(Some differentialSteps, InOrderPrefix)) pe (wrap "Differential: A versus B. Therefore B." "B")) 0.0 ""
            }
            test "without explicit steps the sample's annotated steps are used, in the think block only" {
                let text = wrap "Tachycardia noted; D-dimer raised; CTPA ordered." "B"
                Expect.equal (score (StepOrder(None, InOrderPrefix)) pe text) 1.0 "annotated steps in order"
                Expect.equal (score (StepOrder(None, InOrderPrefix)) pe (wrap "nothing" "tachycardia d-dimer ctpa")) 0.0 "answer text is not reasoning"
            }
        ]

        testList "probability update check" [
            test "pre-test and post-test probabilities score 1" {
                Expect.equal (score (ProbabilityUpdate None) pe "Pre-test probability is 30%; after the scan the post-test probability is 85%.") 1.0 ""
            }
            test "a likelihood ratio counts as the update" {
                Expect.equal (score (ProbabilityUpdate None) pe "Prior probability 0.3, and a likelihood ratio of 12.") 1.0 ""
            }
            test "half credit for each part alone" {
                Expect.equal (score (ProbabilityUpdate None) pe "Pre-test probability 30%.") 0.5 "pre only"
                Expect.equal (score (ProbabilityUpdate None) pe "The LR+ is 9.") 0.5 "update only"
            }
            test "cues without numbers do not count" {
                Expect.equal (score (ProbabilityUpdate None) pe "The prior is high and the posterior higher.") 0.0 ""
            }
            test "with a tolerance the stated pre-test must match the annotated one" {
                let text = "Pre-test probability 30%; post-test 80%."
                Expect.equal (score (ProbabilityUpdate(Some 0.1)) pe text) 1.0 "30% vs 0.3"
                Expect.equal (score (ProbabilityUpdate(Some 0.1)) { pe with PretestProbability = Some 0.8 } text) 0.5 "30% vs 0.8"
                Expect.equal (score (ProbabilityUpdate(Some 0.1)) { pe with PretestProbability = None } text) 1.0 "nothing annotated: any stated value"
            }
        ]

        testList "length budget check" [
            test "full score within the budget, linear fall-off over the overflow, then 0" {
                let check = LengthBudget(Tokens, 10, 10)
                let withTokens n = (Check.evaluate check pe (Completion.OfTokens("x", n))).Score
                Expect.equal (withTokens 10) 1.0 "at the budget"
                Expect.equal (withTokens 15) 0.5 "half way through the overflow"
                Expect.equal (withTokens 25) 0.0 "past the overflow"
            }
            test "without a token count, words and punctuation are counted; chars count characters" {
                Expect.equal (score (LengthBudget(Tokens, 4, 0)) pe "one two, three") 1.0 "4 tokens"
                Expect.equal (score (LengthBudget(Tokens, 3, 0)) pe "one two, three") 0.0 "hard cut"
                Expect.equal (score (LengthBudget(Chars, 5, 5)) pe "abcdefg") 0.6 "2 chars over of 5"
            }
        ]

        testList "perspective rewards" [
            testPropertyWithConfig config "adding a satisfied check never lowers a perspective's reward" (Prop.forAll (Arb.fromGen (gen {
                let! p = perspectiveGen
                let! text = completionText
                let! extra = Gen.oneof [ weightedCheck; weight |> Gen.map (fun w -> { Check = LengthBudget(Chars, text.Length + 1, 0); Weight = w }) ]
                return p, text, extra })) (fun (p, text, extra) ->
                    let c = Completion.OfText text
                    let parsed = TextMatch.parse text
                    let before = (GuidelineSpec.evaluatePerspective p pe c parsed).Reward
                    let satisfied = (Check.evaluate extra.Check pe c).Score = 1.0
                    let after = (GuidelineSpec.evaluatePerspective { p with Checks = p.Checks @ [ extra ] } pe c parsed).Reward
                    not satisfied || after >= before - 1e-12))
            testPropertyWithConfig config "every reward lies in [0, 1]" (Prop.forAll (Arb.fromGen (Gen.map2 (fun p t -> p, t) perspectiveGen completionText)) (fun (p, text) ->
                let r = (GuidelineSpec.evaluatePerspective p pe (Completion.OfText text) (TextMatch.parse text)).Reward
                r >= 0.0 && r <= 1.0))
            test "the reward is the weighted mean of the check scores, with a breakdown" {
                let p = perspective "bayesian" [ check.format 0.2; check.answer 0.5; check.probabilityUpdate 0.3 ]
                let text = wrap "Pre-test probability 30%." "A"
                let s = GuidelineSpec.evaluatePerspective p pe (Completion.OfText text) (TextMatch.parse text)
                Expect.floatClose Accuracy.veryHigh s.Reward (0.2 * 1.0 + 0.5 * 0.0 + 0.3 * 0.5) "0.2 + 0 + 0.15"
                Expect.sequenceEqual (s.Checks |> List.map (fun (_, r) -> r.Score)) [ 1.0; 0.0; 0.5 ] "per-check scores"
            }
        ]

        testList "weighting" [
            test "weights combine base, specialty, question type and the annotated perspective, summing to 1" {
                let spec = DefaultSpec.load ()
                let w = Weighting.resolve spec.Weighting (GuidelineSpec.perspectiveNames spec) pe
                // radiology: intuitive × 1.25; diagnosis: differential × 1.5; annotated bayesian × 2.
                let raw = [| 1.5; 1.25; 1.0; 2.0 |]
                Expect.sequenceEqual (w |> Array.map (fun x -> Math.Round(x, 12))) (raw |> Array.map (fun x -> Math.Round(x / Array.sum raw, 12))) "normalised"
            }
            test "all-zero weights for a sample are an error" {
                let weighting = { Weighting.Uniform with Base = Map [ "a", 0.0 ] }
                Expect.throwsT<ArgumentException> (fun () -> Weighting.resolve weighting [| "a" |] pe |> ignore) "sum 0"
            }
        ]

        testList "JSON specs" [
            test "the default spec loads from the embedded resource with the four perspectives" {
                let spec = DefaultSpec.load ()
                Expect.sequenceEqual (GuidelineSpec.perspectiveNames spec) [| "differential"; "intuitive"; "analytical"; "bayesian" |] "perspectives"
                Expect.all spec.Perspectives (fun p -> p.Prompt <> "") "each has a guideline prompt"
            }
            test "the embedded default equals the file in the repository" {
                let file = Path.Combine(TestKit.repoRoot, "src", "MMedExpert.Algebra", "Rewards", "default-guidelines.json")
                Expect.equal (SpecJson.load file) (DefaultSpec.load ()) "same spec"
            }
            testPropertyWithConfig config "spec JSON round-trips" (Prop.forAll (Arb.fromGen specGen) (fun spec ->
                SpecJson.parse "generated" (SpecJson.serialize spec) = spec))
            test "save then load gives the same spec and leaves no temporary file" {
                use dir = new TestKit.TempDir()
                let path = Path.Combine(dir.Path, "nested", "spec.json")
                let spec = DefaultSpec.load () |> withPerspective (perspective "extra" [ check.maxTokens 100 50 1.0 ])
                SpecJson.save path spec
                SpecJson.save path spec
                Expect.equal (SpecJson.load path) spec "round trip through a file"
                Expect.sequenceEqual (Directory.GetFiles(Path.GetDirectoryName path) |> Array.map Path.GetFileName) [| "spec.json" |] "only the spec"
            }
            let bad (json: string) = fun () -> SpecJson.parse "specs/bad.json" json |> ignore
            let oneCheck (check: string) = sprintf """{ "name": "s", "perspectives": [ { "name": "p", "checks": [ { "type": "format", "weight": 1 }, %s ] } ] }""" check
            test "an unknown check type names the file, the field and the known types" {
                expectThrowsSpec (bad (oneCheck """{ "type": "formt", "weight": 1 }""")) [ "specs/bad.json"; "perspectives[0].checks[1].type"; "unknown check type 'formt'"; "probabilityUpdate" ]
            }
            test "a missing or mistyped field is named" {
                expectThrowsSpec (bad (oneCheck """{ "type": "answer" }""")) [ "perspectives[0].checks[1].weight"; "required field is missing" ]
                expectThrowsSpec (bad (oneCheck """{ "type": "answer", "weight": "high" }""")) [ "perspectives[0].checks[1].weight"; "expected a number, got a string" ]
                expectThrowsSpec (bad (oneCheck """{ "type": "lengthBudget", "weight": 1, "max": 1.5 }""")) [ "perspectives[0].checks[1].max"; "whole number" ]
            }
            test "an unknown field is an error (no silently ignored typo)" {
                expectThrowsSpec (bad (oneCheck """{ "type": "answer", "weight": 1, "partialCredt": true }""")) [ "perspectives[0].checks[1].partialCredt"; "unknown field" ]
            }
            test "malformed JSON names the line" {
                expectThrowsSpec (bad "{\n  \"name\": \"s\",\n  \"perspectives\": [ oops ]\n}") [ "specs/bad.json"; "line 3"; "malformed JSON" ]
            }
            test "invalid values are named: negative weight, duplicate perspective, bad boost" {
                expectThrowsSpec (bad (oneCheck """{ "type": "answer", "weight": -1 }""")) [ "perspectives[0].checks[1].weight"; ">= 0" ]
                expectThrowsSpec (bad """{ "name": "s", "perspectives": [ { "name": "p", "checks": [ { "type": "format", "weight": 1 } ] }, { "name": "P", "checks": [ { "type": "format", "weight": 1 } ] } ] }""") [ "perspectives[1].name"; "appears twice" ]
                expectThrowsSpec (bad """{ "name": "s", "perspectives": [ { "name": "p", "checks": [ { "type": "format", "weight": 1 } ] } ], "weighting": { "annotatedPerspectiveBoost": 0 } }""") [ "weighting.annotatedPerspectiveBoost" ]
            }
            test "a missing file is named" {
                expectThrowsSpec (fun () -> SpecJson.load "/nonexistent/spec.json" |> ignore) [ "/nonexistent/spec.json"; "not found" ]
            }
        ]

        testList "DSL" [
            test "the combinators build the same spec as the equivalent JSON" {
                let fromDsl =
                    guideline "s" [
                        perspective "bayesian" [ check.format 0.2; check.answer 0.5; check.probabilityUpdateWithin 0.1 0.3 ] |> withPrompt "Be Bayesian."
                        perspective "differential" [ check.stepsInOrder 1.0 [ step "findings" [ "shows" ] ]; check.maxChars 100 0 0.5 ] ]
                let fromJson =
                    SpecJson.parse "inline" """
                    { "name": "s", "description": "",
                      "perspectives": [
                        { "name": "bayesian", "prompt": "Be Bayesian.", "checks": [
                            { "type": "format", "weight": 0.2 }, { "type": "answer", "weight": 0.5 },
                            { "type": "probabilityUpdate", "weight": 0.3, "pretestTolerance": 0.1 } ] },
                        { "name": "differential", "checks": [
                            { "type": "stepOrder", "weight": 1, "steps": [ { "name": "findings", "keywords": ["shows"] } ] },
                            { "type": "lengthBudget", "weight": 0.5, "unit": "chars", "max": 100 } ] } ] }"""
                Expect.equal fromDsl fromJson "same spec"
            }
            test "withCheck and withPerspective edit a loaded spec" {
                let spec = DefaultSpec.load () |> withCheck "Bayesian" (check.keyFindings 1.0) |> withPerspective (perspective "intuitive" [ check.answer 1.0 ])
                Expect.equal (GuidelineSpec.tryFindPerspective "bayesian" spec |> Option.map (fun p -> List.last p.Checks)) (Some (check.keyFindings 1.0)) "check appended"
                Expect.equal (GuidelineSpec.perspectiveNames spec).[1] "intuitive" "replaced in place"
                Expect.equal (GuidelineSpec.tryFindPerspective "intuitive" spec |> Option.map (fun p -> p.Checks.Length)) (Some 1) "replaced"
                expectThrowsSpec (fun () -> DefaultSpec.load () |> withCheck "surgical" (check.format 1.0) |> ignore) [ "no perspective named 'surgical'" ]
            }
        ]

        testList "trainer bridge" [
            test "a correct, well-reasoned completion gets a higher GBA advantage than a wrong one" {
                let spec = DefaultSpec.load ()
                let good = wrap "The image shows a wedge-shaped opacity with tachycardia and hypoxia. Differential: pneumonia versus PE. Pre-test probability 30%; a D-dimer distinguishes them, likelihood ratio 10, post-test probability 80%. CTPA confirms. Therefore PE." "B"
                let wrong = wrap "Looks like pneumonia." "A"
                let lazyRight = "B"
                let completions = [| good; wrong; lazyRight; wrong |] |> Array.map Completion.OfText
                let strategies = [| 0; 0; 3; 3 |]
                let group, scores = GuidelineRewards.rolloutGroup spec pe completions strategies
                Expect.equal (Array2D.length2 group.Rewards) 4 "one column per perspective"
                Expect.equal scores.Length 4 "a breakdown per completion"
                let a = (Estimator.apply (Estimator.parse "gba") [| group |])[0]
                Expect.isGreaterThan a[0] a[2] "reasoning + format beat a bare letter"
                Expect.isGreaterThan a[2] a[1] "a right letter beats a wrong answer"
                Expect.floatClose Accuracy.high (Array.sum a) 0.0 "advantages sum to 0"
            }
            test "strategy indices come from perspective names" {
                let spec = DefaultSpec.load ()
                Expect.equal (GuidelineRewards.strategyIndex spec "Bayesian") 3 "case-insensitive"
                Expect.throwsT<ArgumentException> (fun () -> GuidelineRewards.strategyIndex spec "surgical" |> ignore) "unknown perspective"
            }
        ]
    ]
