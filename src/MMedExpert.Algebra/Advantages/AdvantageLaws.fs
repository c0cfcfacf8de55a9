namespace MMedExpert.Algebra.Advantages

open System

/// One input to a law: a group of rewards plus the transformation parameters some laws need.
type LawCase =
    { Rewards: float[]
      /// Positive factor for the scaling / affine laws.
      Scale: float
      /// Shift for the shift / affine laws, in reward units.
      Shift: float
      /// A permutation of 0 .. G − 1 for the permutation law.
      Permutation: int[] }

/// What a law says about one case.
type LawOutcome =
    | Holds
    | Fails of detail: string
    /// The case does not meet the law's precondition (e.g. overflow after the affine map, or rewards too close together
    /// for the law to be checkable in floating point); it is neither a pass nor a failure.
    | Vacuous

/// A law an advantage estimator (`float[] -> float[]`, one group) may satisfy, checkable case by case.
type Law =
    { Name: string
      Holds: (float[] -> float[]) -> LawCase -> LawOutcome }

/// The verdict of a law over many cases.
type LawReport =
    { Law: string
      Passed: bool
      /// Cases checked (excluding vacuous ones).
      Cases: int
      Vacuous: int
      /// The first failing case's rewards and why it failed.
      Counterexample: (float[] * string) option }

/// Laws of group advantage estimators, shared by the property tests (FsCheck draws the cases) and by researchers'
/// scripts (`AdvantageLaws.check myEstimator` draws its own cases, huge and tiny magnitudes included).
///
/// Tolerances: a law comparing two computations allows |difference| ≤ max|output| · (1e-10 + 64·G·ε·κ), where ε is the
/// machine epsilon and κ = (max|r| + smallest normal) / (max r − min r) is the condition number of the group (how much a
/// rounding error can grow when the mean is subtracted; see `conditionNumber`). Cases with κ > 1e6 (near-ties, or a spread
/// of a few subnormal quanta) cannot be checked in doubles and count as vacuous; finiteness, G = 1 and all-equal are
/// checked on every case.
module AdvantageLaws =

    /// Machine epsilon of float64 (2^-52).
    let private eps = Math.BitIncrement 1.0 - 1.0

    let private maxAbs (xs: float[]) = xs |> Array.fold (fun acc x -> max acc (abs x)) 0.0

    /// (max|r| + smallest normal double) / (max r − min r); infinity for a constant group. The first term is the usual
    /// condition number of subtracting the mean; the second accounts for the subnormal range, where any intermediate
    /// result in reward units is rounded to a multiple of 5e-324 (an absolute error), so a group whose spread is only a
    /// few such quanta cannot be checked to relative precision by any double implementation.
    let conditionNumber (rewards: float[]) =
        if rewards.Length = 0 || GroupStats.isConstant rewards then infinity
        else
            let spread = Array.max rewards - Array.min rewards
            if Double.IsInfinity spread then infinity else (maxAbs rewards + 2.2250738585072014e-308) / spread

    let private relativeTolerance (g: int) (kappa: float) = 1e-10 + 64.0 * float (max g 1) * eps * kappa

    let private show (xs: float[]) = "[" + String.Join("; ", xs |> Array.map (fun x -> x.ToString("R"))) + "]"

    /// Runs the estimator, turning an exception into a failure (an estimator that throws on a valid group breaks every law).
    let private run (estimator: float[] -> float[]) (rewards: float[]) : Result<float[], string> =
        try
            let a = estimator (Array.copy rewards)
            if isNull a then Error "the estimator returned null"
            elif a.Length <> rewards.Length then Error (sprintf "%d advantages for %d rewards" a.Length rewards.Length)
            else Ok a
        with ex -> Error (sprintf "the estimator threw %s: %s" (ex.GetType().Name) ex.Message)

    /// Results in the subnormal range are rounded to multiples of the smallest double: allow a few of those quanta,
    /// times the factor a law multiplied a computed result by.
    let private quantumFloor (g: int) (factor: float) = 8.0 * float (max g 1) * Double.Epsilon * max 1.0 factor

    let private compareScaled (what: string) (kappa: float) (factor: float) (expected: float[]) (actual: float[]) : LawOutcome =
        if kappa > 1e6 then Vacuous
        else
            let m = max (maxAbs expected) (maxAbs actual)
            let tol = m * relativeTolerance expected.Length kappa + quantumFloor expected.Length factor
            match Array.tryFindIndex id (Array.map2 (fun e a -> not (abs (e - a) <= tol)) expected actual) with
            | None -> Holds
            | Some i -> Fails (sprintf "%s: entry %d is %s, expected %s (tolerance %g)" what i (actual[i].ToString("R")) (expected[i].ToString("R")) tol)

    let private compare what kappa expected actual = compareScaled what kappa 1.0 expected actual

    let private finite (xs: float[]) = Array.forall Double.IsFinite xs

    /// Every finite group gives finite advantages (no NaN, no infinity).
    let finiteOutput : Law =
        { Name = "finite output for every finite input"
          Holds = fun f case ->
            if not (finite case.Rewards) then Vacuous
            else
                match run f case.Rewards with
                | Error e -> Fails e
                | Ok a ->
                    match Array.tryFindIndex (Double.IsFinite >> not) a with
                    | None -> Holds
                    | Some i -> Fails (sprintf "advantage %d is %g" i a[i]) }

    /// G = 1: a lone completion has nothing to be compared with, so its advantage is exactly 0.
    let singletonGivesZero : Law =
        { Name = "G = 1 gives a zero advantage"
          Holds = fun f case ->
            if case.Rewards.Length = 0 then Vacuous
            else
                match run f [| case.Rewards[0] |] with
                | Error e -> Fails e
                | Ok a -> if a[0] = 0.0 then Holds else Fails (sprintf "advantage %s" (a[0].ToString("R"))) }

    /// All rewards equal: no signal, exact zeros (never NaN).
    let allEqualGivesZeros : Law =
        { Name = "all-equal rewards give zeros"
          Holds = fun f case ->
            if case.Rewards.Length = 0 then Vacuous
            else
                let same = Array.create case.Rewards.Length case.Rewards[0]
                match run f same with
                | Error e -> Fails e
                | Ok a -> if Array.forall (fun x -> x = 0.0) a then Holds else Fails (sprintf "advantages %s for rewards %s" (show a) (show same)) }

    /// Reordering the completions reorders their advantages the same way: A(r ∘ π) = A(r) ∘ π.
    let permutationEquivariant : Law =
        { Name = "permutation equivariance"
          Holds = fun f case ->
            let r, p = case.Rewards, case.Permutation
            if p.Length <> r.Length then Vacuous
            else
                let permuted = p |> Array.map (fun i -> r[i])
                match run f r, run f permuted with
                | Error e, _ | _, Error e -> Fails e
                | Ok a, Ok b -> compare "A(π r) vs π A(r)" (conditionNumber r) (p |> Array.map (fun i -> a[i])) b }

    /// Σ_i A_i = 0: the group's advantages only redistribute credit.
    let sumsToZero : Law =
        { Name = "group advantages sum to 0"
          Holds = fun f case ->
            let kappa = conditionNumber case.Rewards
            match run f case.Rewards with
            | Error e -> Fails e
            | Ok a ->
                if Double.IsInfinity kappa then (if Array.forall (fun x -> x = 0.0) a then Holds else Fails "constant group with non-zero advantages")
                elif kappa > 1e6 then Vacuous
                else
                    let total = Array.sum a
                    let scale = a |> Array.sumBy abs
                    if abs total <= scale * relativeTolerance a.Length kappa + quantumFloor a.Length 1.0 then Holds
                    else Fails (sprintf "Σ A = %g (Σ|A| = %g)" total scale) }

    /// A(r + c) = A(r): only differences between completions matter.
    let shiftInvariant : Law =
        { Name = "invariant under a reward shift"
          Holds = fun f case ->
            let shifted = case.Rewards |> Array.map (fun r -> r + case.Shift)
            if not (finite shifted) then Vacuous
            else
                match run f case.Rewards, run f shifted with
                | Error e, _ | _, Error e -> Fails e
                | Ok a, Ok b -> compare "A(r + c) vs A(r)" (max (conditionNumber case.Rewards) (conditionNumber shifted)) a b }

    /// A(a·r + b) = A(r) for a > 0: GRPO's normalisation makes the reward's units irrelevant (needs epsilon = 0).
    let positiveAffineInvariant : Law =
        { Name = "invariant under positive affine maps"
          Holds = fun f case ->
            let mapped = case.Rewards |> Array.map (fun r -> case.Scale * r + case.Shift)
            if not (case.Scale > 0.0) || not (finite mapped) then Vacuous
            else
                match run f case.Rewards, run f mapped with
                | Error e, _ | _, Error e -> Fails e
                | Ok a, Ok b -> compare "A(a r + b) vs A(r)" (max (conditionNumber case.Rewards) (conditionNumber mapped)) a b }

    /// A(a·r) = a·A(r) for a > 0: unnormalised estimators (Dr. GRPO, RLOO) keep the reward's units.
    let scaleEquivariant : Law =
        { Name = "equivariant under positive scaling"
          Holds = fun f case ->
            let scaled = case.Rewards |> Array.map (fun r -> case.Scale * r)
            let expectedFinite = case.Rewards |> Array.forall (fun r -> Double.IsFinite(r * case.Scale * 4.0))
            if not (case.Scale > 0.0) || not expectedFinite then Vacuous
            else
                match run f case.Rewards, run f scaled with
                | Error e, _ | _, Error e -> Fails e
                | Ok a, Ok b ->
                    let expected = a |> Array.map (fun x -> x * case.Scale)
                    if not (finite expected) then Vacuous
                    else compareScaled "A(a r) vs a A(r)" (max (conditionNumber case.Rewards) (conditionNumber scaled)) case.Scale expected b }

    /// Σ_i A_i² = expected G when the rewards are not all equal (G − 1 for sample-std GRPO, G for population std, both
    /// with epsilon = 0).
    let sumOfSquares (label: string) (expected: int -> float) : Law =
        { Name = sprintf "Σ A² = %s when rewards differ" label
          Holds = fun f case ->
            let g = case.Rewards.Length
            if g < 2 || GroupStats.isConstant case.Rewards then Vacuous
            else
                match run f case.Rewards with
                | Error e -> Fails e
                | Ok a ->
                    let kappa = conditionNumber case.Rewards
                    let total = a |> Array.sumBy (fun x -> x * x)
                    let target = expected g
                    if kappa > 1e6 then Vacuous
                    elif abs (total - target) <= max 1.0 target * relativeTolerance g kappa then Holds
                    else Fails (sprintf "Σ A² = %s, expected %s" (total.ToString("R")) (target.ToString("R"))) }

    /// A(r) = factor(G) · B(r) for a reference estimator B (e.g. RLOO = G/(G − 1) · Dr. GRPO).
    let proportionalTo (label: string) (reference: float[] -> float[]) (factor: int -> float) : Law =
        { Name = sprintf "equals %s" label
          Holds = fun f case ->
            let g = case.Rewards.Length
            match run f case.Rewards, run reference case.Rewards with
            | Error e, _ -> Fails e
            | _, Error e -> Fails ("reference: " + e)
            | Ok a, Ok b ->
                let expected = b |> Array.map (fun x -> x * factor g)
                if not (finite expected) then Vacuous
                else compareScaled (sprintf "A(r) vs %s" label) (conditionNumber case.Rewards) (abs (factor g)) expected a }

    /// The laws every group-relative estimator is expected to satisfy.
    let core : Law list =
        [ finiteOutput; singletonGivesZero; allEqualGivesZeros; permutationEquivariant; sumsToZero; shiftInvariant ]

    let private magnitudes = [| 5e-324; 1e-300; 1e-150; 1e-10; 1e-3; 1.0; 1e3; 1e10; 1e150; 1e300 |]

    /// A random case: G in 1 .. 16; rewards of one magnitude (uniform, or few distinct values as with 0/1 rewards), of
    /// mixed magnitudes in one group (1e-300 next to 1e300), or all equal; a log-uniform scale in [1e-3, 1e3]; a shift up to
    /// ten times the group's magnitude.
    let randomCase (rng: Random) : LawCase =
        let g = if rng.NextDouble() < 0.1 then 1 else rng.Next(2, 17)
        let pick () = magnitudes[rng.Next magnitudes.Length]
        let m = pick ()
        let rewards =
            match rng.Next 8 with
            | 0 | 1 | 2 -> Array.init g (fun _ -> m * (2.0 * rng.NextDouble() - 1.0))
            | 3 | 4 -> Array.init g (fun _ -> m * float (rng.Next 3))
            | 5 | 6 -> Array.init g (fun _ -> pick () * (2.0 * rng.NextDouble() - 1.0))
            | _ -> Array.create g (m * (2.0 * rng.NextDouble() - 1.0))
        let permutation = Array.init g id |> Array.sortBy (fun _ -> rng.Next())
        { Rewards = rewards
          Scale = Math.Pow(10.0, 6.0 * rng.NextDouble() - 3.0)
          Shift = m * (20.0 * rng.NextDouble() - 10.0)
          Permutation = permutation }

    /// Checks each law on `cases` random cases drawn with `seed`; reports the first counterexample of each failing law.
    let checkWith (laws: Law list) (cases: int) (seed: int) (estimator: float[] -> float[]) : LawReport list =
        let rng = Random seed
        let drawn = List.init cases (fun _ -> randomCase rng)
        laws |> List.map (fun law ->
            let mutable checkedCases, vacuous, counterexample = 0, 0, None
            for case in drawn do
                if counterexample.IsNone then
                    match law.Holds estimator case with
                    | Holds -> checkedCases <- checkedCases + 1
                    | Vacuous -> vacuous <- vacuous + 1
                    | Fails detail ->
                        checkedCases <- checkedCases + 1
                        counterexample <- Some (case.Rewards, detail)
            { Law = law.Name; Passed = counterexample.IsNone; Cases = checkedCases; Vacuous = vacuous; Counterexample = counterexample })

    /// The core laws on 500 random cases (seed 17).
    let check (estimator: float[] -> float[]) : LawReport list =
        checkWith core 500 17 estimator

    /// One line per law: PASS/FAIL, the law, the case counts and any counterexample.
    let format (reports: LawReport list) : string =
        reports
        |> List.map (fun r ->
            let verdict = if r.Passed then "PASS" else "FAIL"
            let counter =
                match r.Counterexample with
                | None -> ""
                | Some(rewards, why) -> sprintf "\n      counterexample %s: %s" (show rewards) why
            sprintf "%s  %s  (%d cases, %d vacuous)%s" verdict r.Law r.Cases r.Vacuous counter)
        |> String.concat "\n"
