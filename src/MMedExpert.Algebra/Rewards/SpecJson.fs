namespace MMedExpert.Algebra.Rewards

open System
open System.IO
open System.Text
open System.Text.Json

/// Guideline specs as JSON, so they change without recompiling. The format (every field but `type`, `weight`, `name`,
/// `perspectives` and `checks` optional):
/// <code>
/// { "name": "mmedexpert-default", "description": "...",
///   "perspectives": [
///     { "name": "bayesian", "prompt": "Reason like ...",
///       "checks": [ { "type": "format", "weight": 0.15 },
///                   { "type": "answer", "weight": 0.4, "partialCredit": false },
///                   { "type": "keyFindings", "weight": 0.1 },
///                   { "type": "stepOrder", "weight": 0.2, "scoring": "prefix" | "lis",
///                     "steps": [ { "name": "findings", "keywords": ["shows", "reveals"] }, ... ] },   // omit: the sample's steps
///                   { "type": "probabilityUpdate", "weight": 0.3, "pretestTolerance": 0.15 },
///                   { "type": "lengthBudget", "weight": 0.05, "unit": "tokens" | "chars", "max": 512, "overflow": 256 } ] } ],
///   "weighting": { "base": { "differential": 1.0 }, "bySpecialty": { "radiology": { "intuitive": 1.25 } },
///                  "byQuestionType": { "diagnosis": { "differential": 1.5 } }, "annotatedPerspectiveBoost": 2.0 } }
/// </code>
/// Unknown fields are errors (a misspelt field would otherwise be silently ignored); comments and trailing commas are
/// accepted when reading. Every error names the file and the field.
module SpecJson =

    let private fail source field message = raise (GuidelineSpecException(source, field, message))

    let private kindName (k: JsonValueKind) =
        match k with
        | JsonValueKind.Object -> "an object"
        | JsonValueKind.Array -> "an array"
        | JsonValueKind.String -> "a string"
        | JsonValueKind.Number -> "a number"
        | JsonValueKind.True | JsonValueKind.False -> "a boolean"
        | JsonValueKind.Null -> "null"
        | _ -> "nothing"

    /// A JSON object being read: remembers the field path for errors and rejects unknown fields.
    type private Reader(source: string, path: string, element: JsonElement) =
        member _.Path = path
        member _.Field(name: string) = if path = "" then name else path + "." + name
        member r.Expect(kind: JsonValueKind, name: string, e: JsonElement) =
            if e.ValueKind <> kind then fail source (r.Field name) (sprintf "expected %s, got %s" (kindName kind) (kindName e.ValueKind))
        member r.Only(known: string list) =
            for p in element.EnumerateObject() do
                if not (List.contains p.Name known) then
                    fail source (r.Field p.Name) (sprintf "unknown field '%s' (known: %s)" p.Name (String.Join(", ", known)))
        member _.TryGet(name: string) =
            match element.TryGetProperty name with
            | true, v when v.ValueKind <> JsonValueKind.Null -> Some v
            | _ -> None
        member r.Required(name: string) =
            match r.TryGet name with
            | Some v -> v
            | None -> fail source (r.Field name) "required field is missing"
        member r.String(name: string) =
            let v = r.Required name
            r.Expect(JsonValueKind.String, name, v)
            v.GetString()
        member r.OptString(name: string, fallback: string) =
            match r.TryGet name with
            | Some v -> r.Expect(JsonValueKind.String, name, v); v.GetString()
            | None -> fallback
        member r.NumberOf(name: string, v: JsonElement) =
            r.Expect(JsonValueKind.Number, name, v)
            v.GetDouble()
        member r.Number(name: string) = r.NumberOf(name, r.Required name)
        member r.OptNumber(name: string) = r.TryGet name |> Option.map (fun v -> r.NumberOf(name, v))
        member r.Int(name: string, v: JsonElement) =
            r.Expect(JsonValueKind.Number, name, v)
            match v.TryGetInt32() with
            | true, i -> i
            | _ -> fail source (r.Field name) (sprintf "expected a whole number, got %s" (v.GetRawText()))
        member r.OptBool(name: string, fallback: bool) =
            match r.TryGet name with
            | Some v when v.ValueKind = JsonValueKind.True -> true
            | Some v when v.ValueKind = JsonValueKind.False -> false
            | Some v -> fail source (r.Field name) (sprintf "expected a boolean, got %s" (kindName v.ValueKind))
            | None -> fallback
        member r.Array(name: string, v: JsonElement) =
            r.Expect(JsonValueKind.Array, name, v)
            v.EnumerateArray() |> Seq.mapi (fun i e -> sprintf "%s[%d]" (r.Field name) i, e) |> List.ofSeq
        member r.Object(name: string, v: JsonElement) =
            r.Expect(JsonValueKind.Object, name, v)
            Reader(source, r.Field name, v)
        member _.Properties = element.EnumerateObject() |> Seq.map (fun p -> p.Name, p.Value) |> List.ofSeq

    let private objectAt source (path: string) (e: JsonElement) =
        if e.ValueKind <> JsonValueKind.Object then fail source path (sprintf "expected an object, got %s" (kindName e.ValueKind))
        Reader(source, path, e)

    let private stringsAt source (path: string) (e: JsonElement) =
        if e.ValueKind <> JsonValueKind.Array then fail source path (sprintf "expected an array of strings, got %s" (kindName e.ValueKind))
        e.EnumerateArray()
        |> Seq.mapi (fun i x ->
            if x.ValueKind <> JsonValueKind.String then fail source (sprintf "%s[%d]" path i) (sprintf "expected a string, got %s" (kindName x.ValueKind))
            x.GetString())
        |> List.ofSeq

    let private readCheck source (r: Reader) : WeightedCheck =
        let kind = r.String "type"
        let common = [ "type"; "weight" ]
        let check =
            match kind with
            | "format" -> r.Only common; Format
            | "answer" -> r.Only(common @ [ "partialCredit" ]); Answer(r.OptBool("partialCredit", false))
            | "keyFindings" -> r.Only common; KeyFindings
            | "stepOrder" ->
                r.Only(common @ [ "steps"; "scoring" ])
                let scoring =
                    match r.OptString("scoring", "prefix") with
                    | "prefix" -> InOrderPrefix
                    | "lis" -> LongestIncreasing
                    | other -> fail source (r.Field "scoring") (sprintf "unknown scoring '%s' (known: prefix, lis)" other)
                let steps =
                    r.TryGet "steps"
                    |> Option.map (fun v ->
                        r.Array("steps", v) |> List.map (fun (path, e) ->
                            let s = objectAt source path e
                            s.Only [ "name"; "keywords" ]
                            { Name = s.String "name"; Keywords = stringsAt source (s.Field "keywords") (s.Required "keywords") }))
                StepOrder(steps, scoring)
            | "probabilityUpdate" -> r.Only(common @ [ "pretestTolerance" ]); ProbabilityUpdate(r.OptNumber "pretestTolerance")
            | "lengthBudget" ->
                r.Only(common @ [ "unit"; "max"; "overflow" ])
                let unit =
                    match r.OptString("unit", "tokens") with
                    | "tokens" -> Tokens
                    | "chars" -> Chars
                    | other -> fail source (r.Field "unit") (sprintf "unknown unit '%s' (known: tokens, chars)" other)
                let overflow = r.TryGet "overflow" |> Option.map (fun v -> r.Int("overflow", v)) |> Option.defaultValue 0
                LengthBudget(unit, r.Int("max", r.Required "max"), overflow)
            | other -> fail source (r.Field "type") (sprintf "unknown check type '%s' (known: %s)" other (String.Join(", ", Check.kinds)))
        { Check = check; Weight = r.Number "weight" }

    let private readFactors source (r: Reader) : Map<string, float> =
        r.Properties |> List.map (fun (k, v) -> k, r.NumberOf(k, v)) |> Map.ofList

    let private readWeighting source (r: Reader) : Weighting =
        r.Only [ "base"; "bySpecialty"; "byQuestionType"; "annotatedPerspectiveBoost" ]
        let table name =
            match r.TryGet name with
            | None -> Map.empty
            | Some v ->
                let t = r.Object(name, v)
                t.Properties |> List.map (fun (k, inner) -> k, readFactors source (t.Object(k, inner))) |> Map.ofList
        { Base = r.TryGet "base" |> Option.map (fun v -> readFactors source (r.Object("base", v))) |> Option.defaultValue Map.empty
          BySpecialty = table "bySpecialty"
          ByQuestionType = table "byQuestionType"
          AnnotatedPerspectiveBoost = r.OptNumber "annotatedPerspectiveBoost" |> Option.defaultValue 1.0 }

    /// Reads a spec from JSON text; `source` names it in errors (the file path, or e.g. "<embedded default>").
    let parse (source: string) (json: string) : GuidelineSpec =
        let options = JsonDocumentOptions(CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true)
        let document =
            try JsonDocument.Parse(json, options)
            with :? JsonException as ex ->
                let line = if ex.LineNumber.HasValue then sprintf "line %d" (ex.LineNumber.Value + 1L) else "JSON"
                raise (GuidelineSpecException(source, line, "malformed JSON: " + ex.Message, ex))
        use document = document
        objectAt source "(root)" document.RootElement |> ignore
        let root = Reader(source, "", document.RootElement)
        root.Only [ "name"; "description"; "perspectives"; "weighting" ]
        let perspectives =
            root.Array("perspectives", root.Required "perspectives")
            |> List.map (fun (path, e) ->
                let p = objectAt source path e
                p.Only [ "name"; "prompt"; "checks" ]
                { Name = p.String "name"
                  Prompt = p.OptString("prompt", "")
                  Checks = p.Array("checks", p.Required "checks") |> List.map (fun (cpath, ce) -> readCheck source (objectAt source cpath ce)) })
        let weighting =
            match root.TryGet "weighting" with
            | Some v -> readWeighting source (root.Object("weighting", v))
            | None -> Weighting.Uniform
        let spec =
            { Name = root.String "name"
              Description = root.OptString("description", "")
              Perspectives = perspectives
              Weighting = weighting }
        GuidelineSpec.validate source spec
        spec

    /// Reads and validates a spec file.
    let load (path: string) : GuidelineSpec =
        if not (File.Exists path) then raise (GuidelineSpecException(path, "(file)", "spec file not found"))
        parse path (File.ReadAllText path)

    let private writeCheck (w: Utf8JsonWriter) (c: WeightedCheck) =
        w.WriteStartObject()
        w.WriteString("type", Check.kind c.Check)
        w.WriteNumber("weight", c.Weight)
        match c.Check with
        | Format | KeyFindings -> ()
        | Answer partial -> w.WriteBoolean("partialCredit", partial)
        | StepOrder(steps, scoring) ->
            w.WriteString("scoring", (match scoring with InOrderPrefix -> "prefix" | LongestIncreasing -> "lis"))
            steps |> Option.iter (fun steps ->
                w.WriteStartArray "steps"
                for s in steps do
                    w.WriteStartObject()
                    w.WriteString("name", s.Name)
                    w.WriteStartArray "keywords"
                    for k in s.Keywords do w.WriteStringValue k
                    w.WriteEndArray()
                    w.WriteEndObject()
                w.WriteEndArray())
        | ProbabilityUpdate tolerance -> tolerance |> Option.iter (fun t -> w.WriteNumber("pretestTolerance", t))
        | LengthBudget(unit, maxLength, overflow) ->
            w.WriteString("unit", (match unit with Tokens -> "tokens" | Chars -> "chars"))
            w.WriteNumber("max", maxLength)
            w.WriteNumber("overflow", overflow)
        w.WriteEndObject()

    let private writeFactors (w: Utf8JsonWriter) (name: string) (table: Map<string, float>) =
        w.WriteStartObject name
        table |> Map.iter (fun k v -> w.WriteNumber(k, v))
        w.WriteEndObject()

    /// The spec as indented JSON (parse (serialize s) = s).
    let serialize (spec: GuidelineSpec) : string =
        use stream = new MemoryStream()
        (
            use w = new Utf8JsonWriter(stream, JsonWriterOptions(Indented = true, Encoder = Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping))
            w.WriteStartObject()
            w.WriteString("name", spec.Name)
            w.WriteString("description", spec.Description)
            w.WriteStartArray "perspectives"
            for p in spec.Perspectives do
                w.WriteStartObject()
                w.WriteString("name", p.Name)
                w.WriteString("prompt", p.Prompt)
                w.WriteStartArray "checks"
                for c in p.Checks do writeCheck w c
                w.WriteEndArray()
                w.WriteEndObject()
            w.WriteEndArray()
            w.WriteStartObject "weighting"
            writeFactors w "base" spec.Weighting.Base
            w.WriteStartObject "bySpecialty"
            spec.Weighting.BySpecialty |> Map.iter (writeFactors w)
            w.WriteEndObject()
            w.WriteStartObject "byQuestionType"
            spec.Weighting.ByQuestionType |> Map.iter (writeFactors w)
            w.WriteEndObject()
            w.WriteNumber("annotatedPerspectiveBoost", spec.Weighting.AnnotatedPerspectiveBoost)
            w.WriteEndObject()
            w.WriteEndObject()
        )
        Encoding.UTF8.GetString(stream.ToArray()) + "\n"

    /// Validates and writes the spec to `path` through a temporary file and a rename, so a reader never sees half a spec.
    /// (Core's AtomicFile does the same for the C# side; Algebra cannot reference Core, which depends on it.)
    let save (path: string) (spec: GuidelineSpec) : unit =
        GuidelineSpec.validate path spec
        let full = Path.GetFullPath path
        let directory = Path.GetDirectoryName full
        if not (String.IsNullOrEmpty directory) then Directory.CreateDirectory directory |> ignore
        let temp = Path.Combine(directory, sprintf ".%s.%s.tmp" (Path.GetFileName full) (Guid.NewGuid().ToString("N")))
        try
            File.WriteAllText(temp, serialize spec, UTF8Encoding(false))
            File.Move(temp, full, true)
        finally
            if File.Exists temp then File.Delete temp
