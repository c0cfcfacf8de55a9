/// Where experts conflict, per module and per layer: sign disagreement, pairwise cosine, norm ratios. Written as JSON
/// for the notebooks' heatmaps.
module MMedExpert.Algebra.Merge.Conflicts

open System
open System.Text.Json
open System.Text.RegularExpressions
open TorchSharp

/// Conflict measures of one module across the experts (in expert order).
type ModuleConflicts =
    { Module: string
      /// Index in its stack (model.layers.N, visual.blocks.N), null for modules outside any stack.
      Layer: Nullable<int>
      /// The name up to and including the index ("model.layers.12"); "" outside any stack.
      LayerKey: string
      Shape: int64[]
      /// Entries where at least two experts are nonzero: the only places experts can disagree.
      ContestedEntries: int64
      /// Fraction of the contested entries where the nonzero experts do not all share one sign (0 when none contested).
      SignDisagreement: float
      /// Pairwise cosine similarity of the experts' deltas; null where an expert's delta is zero.
      Cosine: Nullable<float>[][]
      /// Frobenius norm of each expert's delta.
      Norms: float[]
      /// Each norm over the mean norm (all 0 when every delta is zero).
      RelativeNorms: float[]
      /// Largest over smallest norm; null when some expert's delta is zero.
      NormRatio: Nullable<float> }

/// The modules of one layer pooled.
type LayerConflicts =
    { Layer: int
      LayerKey: string
      Modules: int
      ContestedEntries: int64
      /// Disagreeing entries over contested entries, pooled over the layer's modules.
      SignDisagreement: float
      /// Mean over the layer's modules of each defined pairwise cosine.
      MeanCosine: Nullable<float>[][]
      MaxNormRatio: Nullable<float> }

type ConflictReport =
    { Experts: string[]
      Modules: ModuleConflicts[]
      Layers: LayerConflicts[] }

let private layerPattern = Regex(@"(?:^|\.)(?:layers|blocks|layer|h)\.(\d+)(?=\.|$)", RegexOptions.Compiled)

/// The layer key and index of a module name: "model.layers.12.self_attn.q_proj" → ("model.layers.12", 12).
let layerOf (moduleName: string) : (string * int) option =
    let m = layerPattern.Match moduleName
    if m.Success then Some(moduleName.Substring(0, m.Index + m.Length), int m.Groups[1].Value) else None

/// Measures one module's conflicts from the experts' deltas (all of one shape), in row blocks of about a million entries.
let measure (moduleName: string) (deltas: Tensor list) : ModuleConflicts =
    Tensors.requireNonEmpty (nameof deltas) deltas
    Tensors.requireSameShape deltas
    let arr = Array.ofList deltas
    let n = arr.Length
    let first = arr[0]
    let gram = Array2D.zeroCreate<float> n n
    let mutable contested = 0L
    let mutable disagreeing = 0L
    let rows = if first.dim () = 0L then 1L else first.shape[0]
    let step = Tensors.rowsPerChunk first.shape
    for start in 0L .. step .. rows - 1L do
        use _block = torch.NewDisposeScope()
        let block = arr |> Array.map (fun t -> if t.dim () = 0L then t else t.narrow (0L, start, min step (rows - start)))
        let nonzeroCount = torch.zeros (block[0].shape, dtype = ScalarType.Int16)
        let anyPositive = torch.zeros (block[0].shape, dtype = ScalarType.Bool)
        let anyNegative = torch.zeros (block[0].shape, dtype = ScalarType.Bool)
        for d in block do
            nonzeroCount.add_ (d.ne(Scalar.op_Implicit 0.0).to_type (ScalarType.Int16)) |> ignore
            anyPositive.logical_or_ (d.gt (Scalar.op_Implicit 0.0)) |> ignore
            anyNegative.logical_or_ (d.lt (Scalar.op_Implicit 0.0)) |> ignore
        contested <- contested + nonzeroCount.ge(Scalar.op_Implicit 2).sum(``type`` = ScalarType.Int64).item<int64> ()
        disagreeing <- disagreeing + anyPositive.logical_and(anyNegative).sum(``type`` = ScalarType.Int64).item<int64> ()
        for i in 0 .. n - 1 do
            for j in i .. n - 1 do
                gram[i, j] <- gram[i, j] + Tensors.dot64 block[i] block[j]
    let norms = Array.init n (fun i -> sqrt (max 0.0 gram[i, i]))
    let cosine =
        Array.init n (fun i ->
            Array.init n (fun j ->
                let g = if i <= j then gram[i, j] else gram[j, i]
                if norms[i] = 0.0 || norms[j] = 0.0 then Nullable()
                else Nullable(g / (norms[i] * norms[j]) |> max -1.0 |> min 1.0)))
    let meanNorm = Array.average norms
    let layer = layerOf moduleName
    { Module = moduleName
      Layer = (match layer with Some(_, i) -> Nullable i | None -> Nullable())
      LayerKey = (match layer with Some(k, _) -> k | None -> "")
      Shape = first.shape
      ContestedEntries = contested
      SignDisagreement = (if contested = 0L then 0.0 else float disagreeing / float contested)
      Cosine = cosine
      Norms = norms
      RelativeNorms = norms |> Array.map (fun x -> if meanNorm = 0.0 then 0.0 else x / meanNorm)
      NormRatio = (let lo = Array.min norms in if lo = 0.0 then Nullable() else Nullable(Array.max norms / lo)) }

/// Pools module measures by layer key, in order of stack then index; modules outside any stack are left out.
let byLayer (modules: ModuleConflicts seq) : LayerConflicts[] =
    modules
    |> Seq.filter (fun m -> m.Layer.HasValue)
    |> Seq.groupBy (fun m -> m.LayerKey)
    |> Seq.map (fun (key, group) ->
        let ms = Array.ofSeq group
        let contested = ms |> Array.sumBy (fun m -> m.ContestedEntries)
        let disagreeing = ms |> Array.sumBy (fun m -> m.SignDisagreement * float m.ContestedEntries)
        let n = ms[0].Cosine.Length
        let meanCosine =
            Array.init n (fun i ->
                Array.init n (fun j ->
                    let defined = ms |> Array.choose (fun m -> let c = m.Cosine in if c.Length = n && c.[i].[j].HasValue then Some c.[i].[j].Value else None)
                    if defined.Length = 0 then Nullable() else Nullable(Array.average defined)))
        let ratios = ms |> Array.map (fun m -> m.NormRatio)
        { Layer = ms[0].Layer.Value
          LayerKey = key
          Modules = ms.Length
          ContestedEntries = contested
          SignDisagreement = (if contested = 0L then 0.0 else disagreeing / float contested)
          MeanCosine = meanCosine
          MaxNormRatio =
            if ratios |> Array.exists (fun r -> not r.HasValue) then Nullable()
            else Nullable(ratios |> Array.map (fun r -> r.Value) |> Array.max) })
    |> Seq.sortBy (fun l -> (l.LayerKey.Substring(0, l.LayerKey.LastIndexOf '.'), l.Layer))
    |> Array.ofSeq

/// The full report: modules in the order given, layers pooled.
let report (experts: string seq) (modules: ModuleConflicts seq) : ConflictReport =
    let ms = Array.ofSeq modules
    { Experts = Array.ofSeq experts; Modules = ms; Layers = byLayer ms }

let private jsonOptions = JsonSerializerOptions(WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase)

let toJson (r: ConflictReport) : string = JsonSerializer.Serialize(r, jsonOptions)

/// Reads a report written by toJson; throws JsonException naming the problem.
let ofJson (json: string) : ConflictReport =
    let r = JsonSerializer.Deserialize<ConflictReport>(json, jsonOptions)
    if obj.ReferenceEquals(r, null) then raise (JsonException "conflict report is null") else r
