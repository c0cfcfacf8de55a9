// Define a new group advantage in a few lines, check it against the laws of group-relative estimators, and see what it
// does to real guideline rewards. Build the library first, then run the script:
//
//   dotnet build src/MMedExpert.Algebra -c Release -v q
//   dotnet fsi scripts/new-advantage.fsx
//
// An estimator is a plain function from the rewards of the G completions of one prompt to their advantages
// (float[] -> float[]), composed from the combinators in MMedExpert.Algebra.Advantages.Advantage.

#r "../src/MMedExpert.Algebra/bin/Release/net10.0/MMedExpert.Algebra.dll"

open MMedExpert.Algebra.Advantages
open MMedExpert.Algebra.Rewards

// ---- 1. the idea ------------------------------------------------------------------------------------------------
// Compare each completion with the mean of the others (RLOO's baseline), then divide by the group's spread so every
// prompt contributes on the same scale (GRPO's normalisation), with epsilon 0 to keep it affine-invariant.
let myAdvantage : float[] -> float[] =
    Advantage.baseline Advantage.leaveOneOutMean >> Advantage.scaleByStd Population 0.0

// A variant that also bounds outliers. Clipping is a common trick; the laws below show what it costs: once an advantage
// is clipped the group no longer sums to 0 (the update is no longer a pure redistribution of credit) and Σ A² shrinks.
let myClippedAdvantage : float[] -> float[] =
    myAdvantage >> Advantage.clip -2.0 2.0

// ---- 2. the laws ------------------------------------------------------------------------------------------------
// The same law checks the test suite runs (AdvantageLaws), on 500 random groups with huge (1e300), tiny (1e-300) and
// subnormal rewards, ties, G = 1 and all-equal groups. A FAIL line shows the first counterexample.
let extraLaws = [ AdvantageLaws.positiveAffineInvariant; AdvantageLaws.sumOfSquares "G" float ]

for name, estimator in [ "myAdvantage", myAdvantage; "myClippedAdvantage", myClippedAdvantage ] do
    printfn "== laws of %s" name
    printfn "%s\n" (AdvantageLaws.checkWith (AdvantageLaws.core @ extraLaws) 500 17 estimator |> AdvantageLaws.format)

// ---- 3. next to the built-ins on one group ------------------------------------------------------------------------
let rewards = [| 1.0; 0.0; 0.0; 0.5; 1.0; 0.0 |]
let show (xs: float[]) = xs |> Array.map (sprintf "%+.3f") |> String.concat " "
printfn "== advantages of the rewards %s" (show rewards)
for name, estimator in
    [ "grpo", Estimators.grpo GrpoOptions.Default
      "drgrpo", Estimators.drGrpo
      "rloo", Estimators.rloo
      "myAdvantage", myAdvantage
      "myClippedAdvantage", myClippedAdvantage ] do
    printfn "%-20s %s" name (show (estimator rewards))

// ---- 4. on guideline rewards ------------------------------------------------------------------------------------
// Four completions of one sample, scored by the default guideline spec (four perspectives), then turned into
// advantages by GBA (each perspective normalised by the new estimator, weighted per sample) and by the new estimator
// on the weighted reward, as the trainer would with Estimator.Custom.
let spec = DefaultSpec.load ()
let sample =
    { Annotations.Empty with
        Answer = "B"
        Options = Map [ "A", "Pneumonia"; "B", "Pulmonary embolism"; "C", "Aortic dissection" ]
        KeyFindings = [ "tachycardia"; "hypoxia"; "wedge-shaped opacity" ]
        PretestProbability = Some 0.3
        QuestionType = "diagnosis"
        Perspective = "bayesian" }
let completions =
    [| "<think>The CT shows a wedge-shaped opacity; tachycardia and hypoxia. Pre-test probability 30%; a likelihood ratio of 10 gives a post-test probability near 80%. Differential: pneumonia versus PE; the D-dimer distinguishes them. Therefore PE.</think><answer>B</answer>"
       "<think>Fever and consolidation suggest pneumonia.</think><answer>A</answer>"
       "B"
       "<think>Tachycardia and hypoxia with a wedge-shaped opacity: a classic pulmonary embolism pattern.</think><answer>B</answer>" |]
    |> Array.map Completion.OfText
let strategies = [| 3; 3; 1; 1 |] // sampled with the bayesian and the intuitive guideline prompts
let group, scores = GuidelineRewards.rolloutGroup spec sample completions strategies

printfn "\n== guideline rewards (%s)" (String.concat ", " (GuidelineSpec.perspectiveNames spec))
scores |> Array.iteri (fun i s -> printfn "completion %d: %s" i (show s.Rewards))
printfn "perspective weights for this sample: %s" (show group.Weights)
let gbaWithMine = Gba.multiStrategy (Gba.centeredSplit 0.5) group.Strategies (Gba.multiPerspective myAdvantage group.Weights group.Rewards)
let advantagesOf estimator = (Estimator.apply estimator [| group |]).[0]
printfn "%-38s %s" "GBA (default)" (show (advantagesOf (Gba GbaOptions.Default)))
printfn "%-38s %s" "GBA with myAdvantage per perspective" (show gbaWithMine)
printfn "%-38s %s" "Estimator.Custom myAdvantage" (show (advantagesOf (Custom("my-advantage", myAdvantage))))

// TODO(issue 8, GRPO trainer): start a short RL run on the `tiny` preset with Custom("my-advantage", myAdvantage) and
// print its reward curve, once the C# GRPO trainer (`mmx gba`) exists. Until then this script stops here.
