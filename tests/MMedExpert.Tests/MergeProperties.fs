module MMedExpert.Tests.MergeProperties

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open TorchSharp
open MMedExpert.Algebra.Merge

type private T = torch.Tensor

/// A small merge problem: experts of one shape with values on a 1/64 grid (sums are exact in float64, so laws hold
/// exactly and no sign election flips on rounding) with many zeros and magnitude ties.
type MergeCase =
    { Rows: int
      Cols: int
      Experts: float[][] }

let private genValue =
    Gen.frequency [ 2, Gen.constant 0.0
                    3, Gen.choose (-3, 3) |> Gen.map float
                    5, Gen.choose (-256, 256) |> Gen.map (fun i -> float i / 64.0) ]

let private genCaseWith (minExperts: int) (maxExperts: int) =
    gen {
        let! rows = Gen.choose (1, 5)
        let! cols = Gen.choose (1, 7)
        let! n = Gen.choose (minExperts, maxExperts)
        let! experts = Gen.arrayOfLength n (Gen.arrayOfLength (rows * cols) genValue)
        return { Rows = rows; Cols = cols; Experts = experts }
    }

let private arbCase = Arb.fromGen (genCaseWith 1 4)
let private arbMulti = Arb.fromGen (genCaseWith 2 4)
let private genDensity = Gen.elements [ 0.0; 0.1; 0.2; 0.25; 0.3; 0.5; 0.7; 1.0 ]
let private genSeed = Gen.choose (0, Int32.MaxValue) |> Gen.map uint64

let private tensorOf (rows: int) (cols: int) (values: float[]) : T =
    torch.tensor(values, dtype = torch.ScalarType.Float64).reshape(int64 rows, int64 cols)

let private tensorsOf (c: MergeCase) : T list = c.Experts |> Array.map (tensorOf c.Rows c.Cols) |> List.ofArray

let private vec (values: float[]) : T = torch.tensor(values, dtype = torch.ScalarType.Float64)
let private mat (rows: int) (cols: int) (values: float[]) : T = (vec values).reshape(int64 rows, int64 cols)

let private valuesOf (t: T) : float[] = t.contiguous().flatten().data<float>().ToArray()

let private expectSame (actual: T) (expected: T) (what: string) =
    Expect.sequenceEqual (valuesOf actual) (valuesOf expected) what

let private expectClose (tolerance: float) (actual: T) (expected: T) (what: string) =
    let a, e = valuesOf actual, valuesOf expected
    Expect.equal a.Length e.Length (what + ": size")
    for i in 0 .. a.Length - 1 do
        if abs (a[i] - e[i]) > tolerance * (1.0 + abs e[i]) then
            failtestf "%s: entry %d is %g, expected %g" what i a[i] e[i]

let private config method density =
    { MergeConfig.defaults with Method = method; Density = density; Lambda = 1.0; DropRate = 0.5 }

let private withSeeds (seeds: uint64 list) (c: MergeConfig) = { c with Seeds = Array.ofList seeds }

let private mergeWith (c: MergeConfig) (xs: T list) : T = (Merge.mergeModule c "model.layers.0.mlp.up_proj" xs).Delta

let private property name (arb: Arbitrary<'a>) (body: 'a -> unit) =
    testPropertyWithConfig { FsCheckConfig.defaultConfig with maxTest = 60 } name
        (Prop.forAll arb (fun x ->
            use _scope = torch.NewDisposeScope()
            body x))

/// The reference for trim: a stable sort by |x| descending, i.e. ties broken by lower flat index.
let private referenceTrim (density: float) (values: float[]) : float[] =
    let k = int (Trim.keepCount density (int64 values.Length))
    let keep =
        values
        |> Array.mapi (fun i v -> i, abs v)
        |> List.ofArray
        |> List.sortWith (fun (i, a) (j, b) -> if a <> b then compare b a else compare i j)
        |> List.truncate k
        |> List.map fst
        |> Set.ofList
    values |> Array.mapi (fun i v -> if keep.Contains i then v else 0.0)

[<Tests>]
let tests =
    testList "Merge" [
        testList "laws" [
            property "one expert with λ = 1 under task arithmetic is that expert exactly" arbCase (fun c ->
                let x = tensorsOf c |> List.head
                expectSame (mergeWith (config MergeMethod.TaskArithmetic 0.2) [ x ]) x "task arithmetic")

            property "one expert with λ = 1 under TIES and conflict-aware at density 1 is that expert exactly" arbCase (fun c ->
                let x = tensorsOf c |> List.head
                expectSame (mergeWith (config MergeMethod.Ties 1.0) [ x ]) x "ties"
                expectSame (mergeWith (config MergeMethod.ConflictAware 1.0) [ x ]) x "conflict-aware")

            property "merging N identical experts equals merging one of them"
                (Arb.fromGen (Gen.zip3 (genCaseWith 1 1) (Gen.choose (2, 5)) (Gen.zip genDensity genSeed))) (fun (c, n, (density, seed)) ->
                let x = tensorsOf c |> List.head
                let many = List.replicate n x
                for m in [ MergeMethod.Ties; MergeMethod.ConflictAware; MergeMethod.DareTies ] do
                    let cfg = config m density
                    expectSame (mergeWith (withSeeds (List.replicate n seed) cfg) many) (mergeWith (withSeeds [ seed ] cfg) [ x ]) (sprintf "%A" m)
                // Task arithmetic sums, so N copies equal one only as a mean (weights 1/N); 1/N is inexact, hence the tolerance.
                let mean = { config MergeMethod.TaskArithmetic density with Weights = Array.create n (1.0 / float n) }
                expectClose 1e-12 (mergeWith mean many) x "task arithmetic mean")

            property "every nonzero TIES entry has the elected sign" (Arb.fromGen (Gen.zip (genCaseWith 1 4) genDensity)) (fun (c, density) ->
                let xs = tensorsOf c
                let elected = Sign.electSign (Trim.trimAll density xs)
                for m in [ MergeMethod.Ties; MergeMethod.ConflictAware ] do
                    let merged = mergeWith (config m density) xs
                    let bad = merged.ne(Scalar.op_Implicit 0.0).logical_and(merged.sign().ne(elected)).sum().item<int64> ()
                    Expect.equal bad 0L (sprintf "%A: nonzero entries against the elected sign" m))

            property "trim keeps exactly ⌈k·n⌉ entries, ties to the lower index" (Arb.fromGen (Gen.zip (genCaseWith 1 1) genDensity)) (fun (c, density) ->
                let values = c.Experts[0]
                let trimmed = Trim.trim density (tensorOf c.Rows c.Cols values)
                Expect.sequenceEqual (valuesOf trimmed) (referenceTrim density values) "trim against a stable sort"
                let k = Trim.keepCount density (int64 values.Length)
                Expect.equal k (int64 (Math.Ceiling(Math.Round(density * float values.Length, 9)))) "keep count is ⌈density·n⌉")

            property "keepCount of density k/n is k for every k ≤ n (no floating-point round-up)"
                (Arb.fromGen (gen { let! n = Gen.choose (1, 5000) in let! k = Gen.choose (0, n) in return n, k })) (fun (n, k) ->
                Expect.equal (Trim.keepCount (float k / float n) (int64 n)) (int64 k) "keep count")

            testCase "trim breaks an all-equal tie by index" <| fun () ->
                use _scope = torch.NewDisposeScope()
                let x = (vec [| 1.0; -1.0; 1.0; 1.0; -1.0 |])
                Expect.sequenceEqual (valuesOf (Trim.trim 0.4 x)) [| 1.0; -1.0; 0.0; 0.0; 0.0 |] "first two kept"

            property "the result does not depend on the order of the experts (DARE with per-expert seeds)"
                (Arb.fromGen (gen {
                    let! c = genCaseWith 2 4
                    let! density = genDensity
                    let! seeds = Gen.listOfLength c.Experts.Length genSeed
                    let! weights = Gen.listOfLength c.Experts.Length (Gen.choose (1, 8) |> Gen.map (fun w -> float w / 4.0))
                    let! order = Gen.shuffle [| 0 .. c.Experts.Length - 1 |]
                    return c, density, seeds, weights, order })) (fun (c, density, seeds, weights, order) ->
                let xs = tensorsOf c
                let permute (l: 'a list) = order |> Array.map (fun i -> l[i]) |> List.ofArray
                for m in [ MergeMethod.TaskArithmetic; MergeMethod.Ties; MergeMethod.Dare; MergeMethod.DareTies; MergeMethod.ConflictAware ] do
                    let cfg s w = { config m density with Seeds = Array.ofList s; Weights = Array.ofList w }
                    expectClose 1e-12 (mergeWith (cfg (permute seeds) (permute weights)) (permute xs)) (mergeWith (cfg seeds weights) xs) (sprintf "%A" m))

            property "merging in row blocks equals the whole-tensor composition of the steps (every method, any block height)"
                (Arb.fromGen (gen {
                    let! c = genCaseWith 1 4
                    let! density = genDensity
                    let! seeds = Gen.listOfLength c.Experts.Length genSeed
                    let! rowsPerChunk = Gen.choose (1, c.Rows)
                    let! lambda = Gen.elements [ 1.0; 0.5; 2.0 ]
                    return c, density, seeds, int64 rowsPerChunk, lambda })) (fun (c, density, seeds, rowsPerChunk, lambda) ->
                let xs = tensorsOf c
                let ones = [ for _ in xs -> 1.0 ]
                let name = "model.layers.3.self_attn.o_proj"
                let moduleSeeds = seeds |> List.map (fun s -> Dare.moduleSeed s name)
                let whole : (MergeMethod * T) list =
                    [ MergeMethod.TaskArithmetic, TaskArithmetic.taskArithmetic ones xs
                      MergeMethod.Ties, Ties.ties density ones xs
                      MergeMethod.Dare, DareLinear.dareLinear 0.5 moduleSeeds ones xs
                      MergeMethod.DareTies, DareTies.dareTies 0.5 moduleSeeds ones xs
                      MergeMethod.ConflictAware, (ConflictAware.conflictAware density 1.0 ones xs).Delta ]
                for m, expected in whole do
                    let cfg = { config m density with Lambda = lambda; Seeds = Array.ofList seeds }
                    let chunked = (Merge.mergeModuleInChunks rowsPerChunk cfg name xs).Delta
                    expectClose 1e-12 chunked (TaskArithmetic.scale lambda expected) (sprintf "%A in blocks of %d rows" m rowsPerChunk))

            testCase "trim's cut is exact on a large tensor (histogram bracket, ties at the threshold)" <| fun () ->
                use _scope = torch.NewDisposeScope()
                use g = new torch.Generator(5UL, torch.CPU)
                // 3M entries rounded to a coarse grid: many exact ties, and more than one scan chunk.
                let x = torch.randn([| 3L; 1000_000L |], dtype = torch.ScalarType.Float32, generator = g).mul(Scalar.op_Implicit 64.0f).round().div(Scalar.op_Implicit 64.0f)
                for density in [ 0.2; 0.5; 0.013 ] do
                    let kept = Trim.trim density x
                    let k = Trim.keepCount density (x.numel ())
                    let cut = Trim.cut density x
                    let magnitude = x.abs ()
                    Expect.equal (magnitude.gt(Scalar.op_Implicit cut.Threshold).sum().item<int64> () + cut.TiesToKeep) k "above + kept ties = k"
                    Expect.isGreaterThan cut.TiesToKeep 0L "the threshold is an entry's magnitude"
                    let keptCount = kept.ne(Scalar.op_Implicit 0.0).sum().item<int64> ()
                    Expect.equal keptCount k (sprintf "density %g keeps exactly k (no zeros in x at the threshold)" density)
                    let smallestKept = kept.abs().masked_fill(kept.eq(Scalar.op_Implicit 0.0), Scalar.op_Implicit Double.PositiveInfinity).min().item<float32> ()
                    let largestDropped = magnitude.masked_fill(kept.ne(Scalar.op_Implicit 0.0), Scalar.op_Implicit -1.0).max().item<float32> ()
                    Expect.isGreaterThanOrEqual smallestKept largestDropped "no dropped entry is larger than a kept one"

            property "an all-zero expert does not change a TIES, DARE-TIES, disjoint or conflict-aware merge"
                (Arb.fromGen (gen {
                    let! c = genCaseWith 1 3
                    let! density = genDensity
                    let! seeds = Gen.listOfLength (c.Experts.Length + 1) genSeed
                    let! at = Gen.choose (0, c.Experts.Length)
                    return c, density, seeds, at })) (fun (c, density, seeds, at) ->
                let xs = tensorsOf c
                let zero = torch.zeros_like (List.head xs)
                let withZero = List.insertAt at zero xs
                let seedsWithout = List.removeAt at seeds
                for m in [ MergeMethod.Ties; MergeMethod.DareTies; MergeMethod.ConflictAware ] do
                    let cfg s = { config m density with Seeds = Array.ofList s }
                    expectSame (mergeWith (cfg seeds) withZero) (mergeWith (cfg seedsWithout) xs) (sprintf "%A" m)
                let elected = Sign.electSign xs
                expectSame (DisjointMean.disjointMean elected withZero) (DisjointMean.disjointMean elected xs) "disjoint mean")

            property "conflict-aware reduces to TIES exactly when no kept entry opposes the elected sign"
                (Arb.fromGen (Gen.zip (genCaseWith 1 4) genDensity)) (fun (c, density) ->
                // Same sign pattern for every expert (taken from the first one's entries), magnitudes free.
                let signs = c.Experts[0] |> Array.map (fun v -> if v < 0.0 then -1.0 else 1.0)
                let agreeing = { c with Experts = c.Experts |> Array.map (Array.mapi (fun i v -> signs[i] * abs v)) }
                let xs = tensorsOf agreeing
                let r = ConflictAware.conflictAware density 1.0 [ for _ in xs -> 1.0 ] xs
                Expect.equal r.Scale 1.0 "scale"
                expectSame r.Delta (Ties.ties density [ for _ in xs -> 1.0 ] xs) "delta")

            property "the conflict scale lies in [0, 1]" (Arb.fromGen (Gen.zip (genCaseWith 2 4) genDensity)) (fun (c, density) ->
                let r = ConflictAware.conflictAware density 1.0 [ for _ in c.Experts -> 1.0 ] (tensorsOf c)
                Expect.isTrue (r.Scale >= 0.0 && r.Scale <= 1.0) (sprintf "scale %g" r.Scale))

            testCase "TIES on a hand-made conflict drops the outvoted entry instead of averaging it" <| fun () ->
                use _scope = torch.NewDisposeScope()
                let t1 = vec [| 2.0; 1.0; 0.0 |]
                let t2 = vec [| -1.0; 3.0; -2.0 |]
                // entry 0: +2 outweighs −1, so only t1 counts (2, not the plain mean 0.5); entry 1: mean(1, 3); entry 2: only t2.
                expectSame (Ties.ties 1.0 [ 1.0; 1.0 ] [ t1; t2 ]) (vec [| 2.0; 2.0; -2.0 |]) "ties"
                expectSame (TaskArithmetic.taskArithmetic [ 1.0; 0.5 ] [ t1; t2 ]) (vec [| 1.5; 2.5; -1.0 |]) "task arithmetic"

            testCase "conflict-aware scale on a hand-made conflict is the least-squares fit 0.4" <| fun () ->
                use _scope = torch.NewDisposeScope()
                // t1 = [2, 1], t2 = [−1, 1]: elected [+, +], disjoint mean m = [2, 1];
                // α* = ⟨m, t1+t2⟩ / ⟨m², [t1≠0]+[t2≠0]⟩ = (2·1 + 1·2) / (4·2 + 1·2) = 0.4.
                let t1 = (vec [| 2.0; 1.0 |])
                let t2 = (vec [| -1.0; 1.0 |])
                let r = ConflictAware.conflictAware 1.0 1.0 [ 1.0; 1.0 ] [ t1; t2 ]
                Expect.floatClose Accuracy.veryHigh r.Scale 0.4 "scale"
                expectClose 1e-15 r.Delta ((vec [| 0.8; 0.4 |])) "delta"
                let half = ConflictAware.conflictAware 1.0 0.5 [ 1.0; 1.0 ] [ t1; t2 ]
                Expect.floatClose Accuracy.veryHigh half.Scale 0.7 "strength 0.5 goes half way"

            testCase "DARE is unbiased in expectation (400 seeds, every entry within 5.5σ, mean z within 5/√n)" <| fun () ->
                use _scope = torch.NewDisposeScope()
                use g = new torch.Generator(7UL, torch.CPU)
                let x = torch.randn([| 48L; 64L |], dtype = torch.ScalarType.Float64, generator = g)
                let n = float (x.numel ())
                let draws = 400
                for p in [ 0.3; 0.9 ] do
                    use _p = torch.NewDisposeScope()
                    let total = torch.zeros_like x
                    let mutable kept = 0L
                    for s in 1 .. draws do
                        use d = Dare.dare p (Dare.moduleSeed (uint64 s) "m") x
                        kept <- kept + d.ne(Scalar.op_Implicit 0.0).sum().item<int64> ()
                        total.add_ d |> ignore
                    let mean = total.div (Scalar.op_Implicit (float draws))
                    // Var[dare(x)ⱼ] = xⱼ²·p/(1−p), so the mean of `draws` samples has σⱼ = |xⱼ|·√(p/((1−p)·draws)).
                    let sigma = x.abs().mul (Scalar.op_Implicit (sqrt (p / ((1.0 - p) * float draws))))
                    let z = mean.sub(x).div (sigma)
                    let maxZ = z.abs().max().item<float> ()
                    let meanZ = z.mean().item<float> ()
                    Expect.isLessThan maxZ 5.5 (sprintf "p = %g: largest |z|" p)
                    Expect.isLessThan (abs meanZ) (5.0 / sqrt n) (sprintf "p = %g: mean z" p)
                    let keptFraction = float kept / (n * float draws)
                    Expect.isLessThan (abs (keptFraction - (1.0 - p))) 0.01 (sprintf "p = %g: kept fraction %g" p keptFraction)

            testCase "DARE masks differ between modules and experts, repeat for one seed" <| fun () ->
                use _scope = torch.NewDisposeScope()
                let x = torch.ones ([| 32L; 32L |], dtype = torch.ScalarType.Float64)
                let a = Dare.dare 0.5 (Dare.moduleSeed 1UL "model.layers.0.q_proj") x
                let again = Dare.dare 0.5 (Dare.moduleSeed 1UL "model.layers.0.q_proj") x
                let otherModule = Dare.dare 0.5 (Dare.moduleSeed 1UL "model.layers.1.q_proj") x
                let otherExpert = Dare.dare 0.5 (Dare.moduleSeed 2UL "model.layers.0.q_proj") x
                expectSame again a "same seed, same mask"
                Expect.notEqual (valuesOf otherModule) (valuesOf a) "another module draws another mask"
                Expect.notEqual (valuesOf otherExpert) (valuesOf a) "another expert draws another mask"

            property "full-rank SVD re-factorization reproduces the delta (≤ 1e-5 relative, float64)"
                (Arb.fromGen (Gen.zip (Gen.choose (1, 12)) (Gen.zip (Gen.choose (1, 12)) genSeed))) (fun (rows, (cols, seed)) ->
                use g = new torch.Generator(seed, torch.CPU)
                let delta = torch.randn([| int64 rows; int64 cols |], dtype = torch.ScalarType.Float64, generator = g)
                let f = Refactor.refactor Refactor.Exact (min rows cols) delta
                Expect.equal (f.B.shape, f.A.shape) ([| int64 rows; int64 f.Rank |], [| int64 f.Rank; int64 cols |]) "shapes"
                let independent = (delta - f.B.matmul f.A).norm().item<float> () / delta.norm().item<float> ()
                Expect.isLessThanOrEqual independent 1e-5 "‖ΔW − BA‖/‖ΔW‖ recomputed"
                Expect.isLessThanOrEqual f.RelativeError 1e-5 "reported error")

            testCase "truncated SVD error is the Eckart–Young tail, and the randomized SVD finds an exactly low-rank delta" <| fun () ->
                use _scope = torch.NewDisposeScope()
                use g = new torch.Generator(3UL, torch.CPU)
                let delta = torch.randn([| 30L; 20L |], dtype = torch.ScalarType.Float64, generator = g)
                let struct (_, s, _) = torch.linalg.svd (delta, fullMatrices = false)
                let sv = valuesOf s
                let tail = sqrt (sv[5..] |> Array.sumBy (fun v -> v * v)) / sqrt (sv |> Array.sumBy (fun v -> v * v))
                let f = Refactor.refactor Refactor.Exact 5 delta
                Expect.floatClose Accuracy.high f.RelativeError tail "rank-5 error"
                let lowRank = torch.randn([| 300L; 4L |], dtype = torch.ScalarType.Float64, generator = g).matmul (torch.randn([| 4L; 200L |], dtype = torch.ScalarType.Float64, generator = g))
                let method = Refactor.chooseMethod 4 300L 200L 11UL
                Expect.equal method (Refactor.Randomized(10, 2, 11UL)) "a sketch is cheaper here"
                let r = Refactor.refactor method 4 lowRank
                Expect.isLessThan r.RelativeError 1e-8 "rank-4 delta recovered"
        ]

        testList "LoRA delta" [
            testCase "ΔW = (alpha/r)·B·A, and alpha/√r with rsLoRA" <| fun () ->
                use _scope = torch.NewDisposeScope()
                Expect.equal (LoraDelta.scale 16.0 8 false) 2.0 "alpha/r"
                Expect.equal (LoraDelta.scale 16.0 4 true) 8.0 "alpha/√r"
                let b = (mat 2 2 [| 1.0; 2.0; 3.0; 4.0 |])
                let a = (mat 2 3 [| 1.0; 0.0; 1.0; 0.0; 1.0; 1.0 |])
                expectSame (LoraDelta.delta 0.5 b a) ((mat 2 3 [| 0.5; 1.0; 1.5; 1.5; 2.0; 3.5 |])) "delta"
                Expect.throwsT<ArgumentException> (fun () -> LoraDelta.delta 1.0 b (a.t ()) |> ignore) "rank mismatch"
        ]

        testList "conflicts" [
            testCase "hand-made two-expert case: one of two contested entries disagrees, cosine 0, norm ratio √3" <| fun () ->
                use _scope = torch.NewDisposeScope()
                let e1 = (mat 2 2 [| 1.0; -1.0; 2.0; 0.0 |])
                let e2 = (mat 2 2 [| 1.0; 1.0; 0.0; 0.0 |])
                let m = Conflicts.measure "model.layers.12.self_attn.q_proj" [ e1; e2 ]
                Expect.equal m.ContestedEntries 2L "contested"
                Expect.equal m.SignDisagreement 0.5 "disagreement"
                Expect.floatClose Accuracy.veryHigh m.Cosine.[0].[1].Value 0.0 "cosine"
                Expect.floatClose Accuracy.veryHigh m.Cosine.[0].[0].Value 1.0 "self cosine"
                Expect.floatClose Accuracy.veryHigh m.NormRatio.Value (sqrt 3.0) "norm ratio"
                Expect.floatClose Accuracy.veryHigh m.RelativeNorms.[0] (sqrt 6.0 / ((sqrt 6.0 + sqrt 2.0) / 2.0)) "relative norm"
                Expect.equal (m.Layer, m.LayerKey) (Nullable 12, "model.layers.12") "layer"

            testCase "identical experts agree fully, negated ones disagree fully, a zero expert has no cosine" <| fun () ->
                use _scope = torch.NewDisposeScope()
                let e = (vec [| 0.5; -2.0; 3.0 |])
                let same = Conflicts.measure "m" [ e; e.clone () ]
                Expect.equal same.SignDisagreement 0.0 "identical: no disagreement"
                Expect.floatClose Accuracy.veryHigh same.Cosine.[0].[1].Value 1.0 "identical: cosine 1"
                let negated = Conflicts.measure "m" [ e; e.neg () ]
                Expect.equal negated.SignDisagreement 1.0 "negated: all contested entries disagree"
                Expect.floatClose Accuracy.veryHigh negated.Cosine.[1].[0].Value -1.0 "negated: cosine −1"
                let withZero = Conflicts.measure "m" [ e; torch.zeros_like e ]
                Expect.isFalse withZero.Cosine.[0].[1].HasValue "no cosine against a zero delta"
                Expect.isFalse withZero.NormRatio.HasValue "no norm ratio against a zero delta"
                Expect.equal withZero.ContestedEntries 0L "nothing contested"
                Expect.isNone (Conflicts.layerOf "lm_head") "lm_head is in no layer"

            testCase "layers pool modules by key (contested-entry weighted) and sort by index; JSON round-trips" <| fun () ->
                use _scope = torch.NewDisposeScope()
                let a = (vec [| 1.0; 1.0; 1.0; 1.0 |])
                let b = (vec [| 1.0; -1.0; 1.0; 1.0 |])
                let c = (vec [| 1.0; 1.0 |])
                let modules =
                    [ Conflicts.measure "model.layers.10.mlp.up_proj" [ a; b ]        // 1 of 4 disagree
                      Conflicts.measure "model.layers.10.self_attn.v_proj" [ c; c ]    // 0 of 2
                      Conflicts.measure "model.layers.2.self_attn.q_proj" [ a; a.neg () ]
                      Conflicts.measure "visual.blocks.0.attn.qkv" [ c; c ]
                      Conflicts.measure "lm_head" [ c; c ] ]
                let report = Conflicts.report [ "cardiology"; "radiology" ] modules
                Expect.equal (report.Layers |> Array.map (fun l -> l.LayerKey)) [| "model.layers.2"; "model.layers.10"; "visual.blocks.0" |] "layer order"
                let l10 = report.Layers[1]
                Expect.equal (l10.Modules, l10.ContestedEntries) (2, 6L) "layer 10 pools two modules"
                Expect.floatClose Accuracy.veryHigh l10.SignDisagreement (1.0 / 6.0) "pooled disagreement"
                let back = Conflicts.ofJson (Conflicts.toJson report)
                Expect.equal (Conflicts.toJson back) (Conflicts.toJson report) "round trip"
                Expect.stringContains (Conflicts.toJson report) "\"signDisagreement\"" "camelCase fields"
        ]
    ]
