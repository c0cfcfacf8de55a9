module MMedExpert.Tests.AdvantageProperties

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open MMedExpert.Algebra.Advantages

// ---- generators ---------------------------------------------------------------------------------------------------

let private unit01 = Gen.choose (0, 1_000_000_000) |> Gen.map (fun i -> float i / 1e9)

/// Magnitudes from the smallest subnormal to 1e300, so every property also sees huge and tiny rewards.
let private magnitudes = [ 5e-324; 1e-300; 1e-200; 1e-10; 1e-3; 1.0; 7.0; 1e3; 1e10; 1e200; 1e300 ]

let private groupSize = Gen.frequency [ 1, Gen.constant 1; 9, Gen.choose (2, 16) ]

/// A group of rewards: uniform at one magnitude, a few distinct values (like 0/1 rewards), mixed magnitudes in one
/// group, or all equal.
let private rewardsOfSize (g: int) =
    gen {
        let! m = Gen.elements magnitudes
        let! kind = Gen.choose (0, 3)
        match kind with
        | 0 -> return! Gen.arrayOfLength g (unit01 |> Gen.map (fun u -> m * (2.0 * u - 1.0)))
        | 1 -> return! Gen.arrayOfLength g (Gen.choose (0, 2) |> Gen.map (fun k -> m * float k))
        | 2 ->
            return!
                Gen.arrayOfLength g (gen {
                    let! mi = Gen.elements magnitudes
                    let! u = unit01
                    return mi * (2.0 * u - 1.0) })
        | _ ->
            let! u = unit01
            return Array.create g (m * (2.0 * u - 1.0))
    }

let private rewards = groupSize |> Gen.bind rewardsOfSize

let private lawCase =
    gen {
        let! r = rewards
        let! scaleExponent = unit01
        let! shift = unit01
        let! m = Gen.elements magnitudes
        let! permutation = Gen.shuffle (Array.init r.Length id)
        return { Rewards = r; Scale = Math.Pow(10.0, 6.0 * scaleExponent - 3.0); Shift = m * (20.0 * shift - 10.0); Permutation = permutation }
    }

let private config = { FsCheckConfig.defaultConfig with maxTest = 400 }

/// A property test that checks one shared law (AdvantageLaws) on FsCheck-drawn cases.
let private lawProperty (name: string) (law: Law) (estimator: float[] -> float[]) =
    testPropertyWithConfig config name (Prop.forAll (Arb.fromGen lawCase) (fun case ->
        match law.Holds estimator case with
        | Fails detail -> failwithf "%s on %A" detail case.Rewards
        | Holds | Vacuous -> ()))

let private grpoExact = Estimators.grpo { Epsilon = 0.0; Std = Sample }
let private grpoExactPopulation = Estimators.grpo { Epsilon = 0.0; Std = Population }
let private rlooFactor (g: int) = if g <= 1 then 0.0 else float g / float (g - 1)

/// Approximate equality scaled to the vectors' size.
let private close (tol: float) (expected: float[]) (actual: float[]) =
    let scale = Array.append expected actual |> Array.fold (fun acc x -> max acc (abs x)) 1.0
    Array.length expected = Array.length actual && Array.forall2 (fun e a -> abs (e - a) <= tol * scale) expected actual

let private expectClose (actual: float[]) (expected: float[]) (message: string) =
    Expect.isTrue (close 1e-12 expected actual) (sprintf "%s: expected %A, got %A" message expected actual)

let private column (r: float[]) = Array2D.init r.Length 1 (fun i _ -> r[i])

// ---- GBA generators ---------------------------------------------------------------------------------------------

/// A reward matrix [completion, perspective] with bounded rewards (as guideline specs give) and strategy labels.
let private gbaCase =
    gen {
        let! g = Gen.choose (1, 12)
        let! p = Gen.choose (1, 4)
        let! cells = Gen.arrayOfLength (g * p) (Gen.frequency [ 2, unit01; 1, Gen.elements [ 0.0; 0.5; 1.0 ] ])
        let! strategies = Gen.arrayOfLength g (Gen.choose (0, p - 1))
        let weight = unit01 |> Gen.map (fun u -> 10.0 * u - 5.0)
        let! w1 = Gen.arrayOfLength p weight
        let! w2 = Gen.arrayOfLength p weight
        let! alpha = weight
        let! beta = weight
        let! lambda = unit01
        return Array2D.init g p (fun i k -> cells[i * p + k]), strategies, w1, w2, alpha, beta, 2.0 * lambda
    }

[<Tests>]
let tests =
    testList "Advantages" [
        testList "group advantages sum to 0" [
            lawProperty "GRPO" AdvantageLaws.sumsToZero (Estimators.grpo GrpoOptions.Default)
            lawProperty "GRPO, epsilon 0" AdvantageLaws.sumsToZero grpoExact
            lawProperty "Dr. GRPO" AdvantageLaws.sumsToZero Estimators.drGrpo
            lawProperty "RLOO" AdvantageLaws.sumsToZero Estimators.rloo
        ]
        testList "all-equal rewards give zeros" [
            lawProperty "GRPO" AdvantageLaws.allEqualGivesZeros (Estimators.grpo GrpoOptions.Default)
            lawProperty "GRPO, epsilon 0" AdvantageLaws.allEqualGivesZeros grpoExact
            lawProperty "Dr. GRPO" AdvantageLaws.allEqualGivesZeros Estimators.drGrpo
            lawProperty "RLOO" AdvantageLaws.allEqualGivesZeros Estimators.rloo
        ]
        testList "G = 1 gives a zero advantage" [
            lawProperty "GRPO" AdvantageLaws.singletonGivesZero grpoExact
            lawProperty "Dr. GRPO" AdvantageLaws.singletonGivesZero Estimators.drGrpo
            lawProperty "RLOO" AdvantageLaws.singletonGivesZero Estimators.rloo
        ]
        testList "permutation equivariance" [
            lawProperty "GRPO" AdvantageLaws.permutationEquivariant (Estimators.grpo GrpoOptions.Default)
            lawProperty "Dr. GRPO" AdvantageLaws.permutationEquivariant Estimators.drGrpo
            lawProperty "RLOO" AdvantageLaws.permutationEquivariant Estimators.rloo
        ]
        lawProperty "GRPO invariant under positive affine maps (epsilon 0)" AdvantageLaws.positiveAffineInvariant grpoExact
        lawProperty "GRPO invariant under positive affine maps (population std)" AdvantageLaws.positiveAffineInvariant grpoExactPopulation
        lawProperty "Dr. GRPO equivariant under positive scaling" AdvantageLaws.scaleEquivariant Estimators.drGrpo
        lawProperty "Σ A² = G − 1 for sample-std GRPO when rewards differ" (AdvantageLaws.sumOfSquares "G − 1" (fun g -> float (g - 1))) grpoExact
        lawProperty "Σ A² = G for population-std GRPO when rewards differ" (AdvantageLaws.sumOfSquares "G" float) grpoExactPopulation
        lawProperty "RLOO = G/(G−1) · Dr. GRPO" (AdvantageLaws.proportionalTo "G/(G−1) · Dr. GRPO" Estimators.drGrpo rlooFactor) Estimators.rloo
        testList "finite output for every finite input" [
            lawProperty "GRPO" AdvantageLaws.finiteOutput (Estimators.grpo GrpoOptions.Default)
            lawProperty "Dr. GRPO" AdvantageLaws.finiteOutput Estimators.drGrpo
            lawProperty "RLOO" AdvantageLaws.finiteOutput Estimators.rloo
            testPropertyWithConfig config "GRPO up to ±Double.MaxValue" (Prop.forAll (Arb.fromGen (groupSize |> Gen.bind (fun g ->
                Gen.arrayOfLength g (Gen.elements [ Double.MaxValue; -Double.MaxValue; 1e308; 0.0; 5e-324; -1.0 ])))) (fun r ->
                    let a = Estimators.grpo GrpoOptions.Default r
                    Array.forall Double.IsFinite a))
            testPropertyWithConfig config "GBA with huge and tiny rewards" (Prop.forAll (Arb.fromGen (gen {
                let! g = Gen.choose (1, 10)
                let! cols = Gen.arrayOfLength 3 (rewardsOfSize g)
                let! strategies = Gen.arrayOfLength g (Gen.choose (0, 2))
                return Array2D.init g 3 (fun i k -> cols[k][i]), strategies })) (fun (r, s) ->
                    Gba.advantages GbaOptions.Default [| 0.5; 0.3; 0.2 |] s r |> Array.forall Double.IsFinite))
        ]

        testList "GBA" [
            testPropertyWithConfig config "GBA with one perspective equals GRPO" (Prop.forAll (Arb.fromGen (gen {
                let! r = rewards
                let! eps = Gen.elements [ 0.0; 1e-4 ]
                let! std = Gen.elements [ Sample; Population ]
                return r, { Epsilon = eps; Std = std } })) (fun (r, options) ->
                    let expected = Estimators.grpo options r
                    let gba = Gba.advantages { PerPerspective = options; Lambda = 0.5 } [| 1.0 |] (Array.zeroCreate r.Length) (column r)
                    let multi = Gba.multiPerspective (Estimators.grpo options) [| 1.0 |] (column r)
                    expected = gba && expected = multi))

            testPropertyWithConfig config "GBA linear in its weights" (Prop.forAll (Arb.fromGen gbaCase) (fun (r, s, w1, w2, alpha, beta, lambda) ->
                let options = { GbaOptions.Default with Lambda = lambda }
                let a w = Gba.advantages options w s r
                let mixed = Array.map2 (fun x y -> alpha * x + beta * y) w1 w2
                let expected = Array.map2 (fun x y -> alpha * x + beta * y) (a w1) (a w2)
                close 1e-9 expected (a mixed)))

            testPropertyWithConfig config "multi-strategy with λ = 1 and centred terms equals centring the scores" (Prop.forAll (Arb.fromGen gbaCase) (fun (r, s, w1, _, _, _, _) ->
                let scores = Gba.multiPerspective Estimators.drGrpo w1 r
                close 1e-12 (Advantage.center scores) (Gba.multiStrategy (Gba.centeredSplit 1.0) s scores)))

            testPropertyWithConfig config "multi-strategy GBA advantages sum to 0" (Prop.forAll (Arb.fromGen gbaCase) (fun (r, s, w1, _, _, _, lambda) ->
                let a = Gba.advantages { GbaOptions.Default with Lambda = lambda } w1 s r
                abs (Array.sum a) <= 1e-10 * (1.0 + (a |> Array.sumBy abs))))

            testPropertyWithConfig config "multi-strategy GBA is permutation equivariant (labels move with completions)" (Prop.forAll (Arb.fromGen (gen {
                let! case = gbaCase
                let r, _, _, _, _, _, _ = case
                let! p = Gen.shuffle (Array.init (Array2D.length1 r) id)
                return case, p })) (fun ((r, s, w1, _, _, _, lambda), p) ->
                    let options = { GbaOptions.Default with Lambda = lambda }
                    let a = Gba.advantages options w1 s r
                    let rp = Array2D.init (Array2D.length1 r) (Array2D.length2 r) (fun i k -> r[p[i], k])
                    let b = Gba.advantages options w1 (p |> Array.map (fun i -> s[i])) rp
                    close 1e-9 (p |> Array.map (fun i -> a[i])) b))

            test "the between-strategy term prefers the better strategy by λ times its margin" {
                // Strategy 0 scores 1 and 0, strategy 1 scores 3 and 2: within terms ±0.5, between terms ∓1.
                let scores = [| 1.0; 0.0; 3.0; 2.0 |]
                let a = Gba.multiStrategy (Gba.centeredSplit 0.5) [| 0; 0; 1; 1 |] scores
                expectClose a [| 0.0; -1.0; 1.0; 0.0 |] "within ±0.5 plus 0.5 · between ∓1"
            }
        ]

        testList "REINFORCE++" [
            testPropertyWithConfig config "batch advantages have zero mean and Σ A² = N − 1 (epsilon 0)" (Prop.forAll (Arb.fromGen (Gen.choose (1, 5) |> Gen.bind (fun n ->
                Gen.arrayOfLength n (Gen.choose (1, 8) |> Gen.bind (fun g -> Gen.arrayOfLength g unit01))))) (fun groups ->
                    let options = { GroupBaseline = false; Epsilon = 0.0; Std = Sample }
                    let flat = Estimators.reinforcePlusPlus options groups |> Array.concat
                    let n = flat.Length
                    if GroupStats.isConstant (Array.concat groups) then Array.forall ((=) 0.0) flat
                    else abs (Array.sum flat) < 1e-9 * float n && abs ((flat |> Array.sumBy (fun x -> x * x)) - float (n - 1)) < 1e-9 * float n))
            testPropertyWithConfig config "with a group baseline every group sums to 0" (Prop.forAll (Arb.fromGen (Gen.choose (1, 5) |> Gen.bind (fun n ->
                Gen.arrayOfLength n (Gen.choose (1, 8) |> Gen.bind (fun g -> Gen.arrayOfLength g unit01))))) (fun groups ->
                    Estimators.reinforcePlusPlus ReinforcePlusPlusOptions.Default groups
                    |> Array.forall (fun a -> abs (Array.sum a) < 1e-9 * float (a.Length + 1))))
            test "batch normalisation uses the other groups' spread" {
                let alone = Estimators.reinforcePlusPlus ReinforcePlusPlusOptions.Default [| [| 0.0; 1.0 |] |]
                let together = Estimators.reinforcePlusPlus ReinforcePlusPlusOptions.Default [| [| 0.0; 1.0 |]; [| 0.0; 10.0 |] |]
                Expect.isLessThan (abs (together[0][0])) (abs (alone[0][0])) "a wider second group shrinks the first group's advantages"
            }
        ]

        testList "multi-reward normalise-then-sum" [
            testPropertyWithConfig config "matrix and per-reward forms agree, and one reward equals GRPO" (Prop.forAll (Arb.fromGen gbaCase) (fun (r, _, w1, _, _, _, _) ->
                let g = Estimators.grpo GrpoOptions.Default
                let perReward = Estimators.multiReward g w1 (Estimators.columns r)
                let matrix = Estimators.multiRewardMatrix g w1 r
                let single = Estimators.multiReward g [| 1.0 |] [| r[*, 0] |]
                perReward = matrix && single = g r[*, 0]))
            test "weights scale each normalised reward" {
                let accuracy, format = [| 1.0; 0.0; 1.0; 0.0 |], [| 1.0; 1.0; 0.0; 0.0 |]
                let a = Estimators.multiReward (Estimators.grpo { Epsilon = 0.0; Std = Population }) [| 0.8; 0.2 |] [| accuracy; format |]
                expectClose a [| 1.0; -0.6; 0.6; -1.0 |] "0.8·(±1) + 0.2·(±1)"
            }
        ]

        testList "examples" [
            test "GRPO of 0/1 rewards, sample std" {
                let a = Estimators.grpo { Epsilon = 0.0; Std = Sample } [| 1.0; 0.0; 0.0; 0.0 |]
                // mean 0.25, sample std sqrt(0.25) = 0.5
                expectClose a [| 1.5; -0.5; -0.5; -0.5 |] "(r − 0.25) / 0.5"
            }
            test "RLOO subtracts the mean of the others" {
                expectClose (Estimators.rloo [| 3.0; 1.0; 2.0 |]) [| 1.5; -1.5; 0.0 |] "3 − 1.5, 1 − 2.5, 2 − 2"
            }
            test "combinators compose into a new estimator in a few lines" {
                let clippedZ = Advantage.normalize Population 0.0 >> Advantage.clip -1.0 1.0
                expectClose (clippedZ [| 0.0; 0.0; 0.0; 10.0 |]) [| -1.0 / sqrt 3.0; -1.0 / sqrt 3.0; -1.0 / sqrt 3.0; 1.0 |] "z-scores clipped at 1"
                let rankBased = Advantage.ranks >> Advantage.center
                expectClose (rankBased [| 5.0; 1.0; 5.0 |]) [| 0.5; -1.0; 0.5 |] "ties share the average rank"
            }
            test "a non-finite reward is an error naming its index" {
                Expect.throwsT<ArgumentException> (fun () -> Estimators.grpo GrpoOptions.Default [| 1.0; nan; 0.0 |] |> ignore) "NaN reward"
                let message = try Estimators.drGrpo [| 1.0; infinity |] |> ignore; "" with :? ArgumentException as e -> e.Message
                Expect.stringContains message "reward 1" "names the index"
            }
            test "Estimator.parse knows the CLI names and lists them for an unknown one" {
                for name in Estimator.names do
                    Expect.equal (Estimator.name (Estimator.parse name)) name "round trip of the name"
                let message = try Estimator.parse "ppo" |> ignore; "" with :? ArgumentException as e -> e.Message
                Expect.stringContains message "unknown advantage estimator 'ppo'" "names the bad value"
                Expect.stringContains message "gba" "lists the known ones"
            }
            test "Estimator.apply uses the weighted reward for scalar estimators" {
                let group = { Rewards = array2D [ [ 1.0; 0.0 ]; [ 0.0; 1.0 ]; [ 0.0; 0.0 ] ]; Weights = [| 0.75; 0.25 |]; Strategies = [| 0; 0; 0 |] }
                let a = Estimator.apply (Grpo GrpoOptions.Default) [| group |]
                Expect.sequenceEqual a[0] (Estimators.grpo GrpoOptions.Default [| 0.75; 0.25; 0.0 |]) "GRPO of Σ w·r"
                let mismatched = { group with Weights = [| 1.0 |] }
                let message = try Estimator.apply DrGrpo [| group; mismatched |] |> ignore; "" with :? ArgumentException as e -> e.Message
                Expect.stringContains message "group 1: 1 weights for 2 perspective columns" "names the group and the mismatch"
            }
        ]

        testList "shared law checks" [
            test "AdvantageLaws.check passes for the built-in estimators" {
                for name, f in [ "grpo", Estimators.grpo GrpoOptions.Default; "drgrpo", Estimators.drGrpo; "rloo", Estimators.rloo ] do
                    let reports = AdvantageLaws.check f
                    Expect.all reports (fun r -> r.Passed) (sprintf "%s:\n%s" name (AdvantageLaws.format reports))
                    Expect.all reports (fun r -> r.Cases > 0) (sprintf "%s: every law checked some case" name)
            }
            test "the laws catch broken estimators" {
                let fails (law: Law) (f: float[] -> float[]) = AdvantageLaws.checkWith [ law ] 300 5 f |> List.forall (fun r -> not r.Passed)
                let naiveGrpo (r: float[]) =
                    let m = Array.average r
                    let s = sqrt ((r |> Array.sumBy (fun x -> (x - m) ** 2.0)) / float (r.Length - 1))
                    r |> Array.map (fun x -> (x - m) / s)
                Expect.isTrue (fails AdvantageLaws.finiteOutput naiveGrpo) "0/0 in a naive GRPO gives NaN"
                Expect.isTrue (fails AdvantageLaws.sumsToZero (Advantage.scaleByStd Sample 0.0)) "dividing without centring does not sum to 0"
                Expect.isTrue (fails AdvantageLaws.allEqualGivesZeros id) "the identity keeps constant rewards"
                Expect.isTrue (fails AdvantageLaws.permutationEquivariant (Advantage.center >> Array.sort)) "sorting breaks equivariance"
                Expect.isTrue (fails AdvantageLaws.positiveAffineInvariant Estimators.drGrpo) "Dr. GRPO keeps the reward scale"
                Expect.isTrue (fails (AdvantageLaws.sumOfSquares "G − 1" (fun g -> float (g - 1))) grpoExactPopulation) "population std gives G"
                Expect.isTrue (fails (AdvantageLaws.proportionalTo "Dr. GRPO" Estimators.drGrpo (fun _ -> 1.0)) Estimators.rloo) "RLOO is not Dr. GRPO"
                Expect.isTrue (fails AdvantageLaws.shiftInvariant (Advantage.scaleByStd Sample 0.0)) "without centring a shift changes the result"
            }
        ]
    ]
