/// The subset of Jinja that chat templates such as Qwen2.5-VL's use, to render a template in the tests without Python:
/// text, {{ expr }}, {% if/elif/else/endif %}, {% for x in xs %} (with loop.first/last/index0), {% set a = e %},
/// {% set ns.attr = e %}, namespace(...); expressions with or/and/not, ==, !=, in, not in, `is string`, +, literals,
/// variables, .attr and ['key']. A missing key or variable is undefined (null: false, equal to nothing). Anything
/// outside the subset fails loudly, so a template change the subset cannot render breaks the test instead of passing.
module MMedExpert.Tests.JinjaSubset

open System
open System.Collections.Generic
open System.Text
open System.Text.RegularExpressions

type Expr =
    | Lit of obj
    | Var of string
    | Attr of Expr * string
    | Index of Expr * Expr
    | Namespace of (string * Expr) list
    | Binary of string * Expr * Expr
    | Not of Expr
    | IsString of Expr

type Node =
    | Text of string
    | Output of Expr
    | If of (Expr * Node list) list * Node list
    | For of string * Expr * Node list
    | Set of string list * Expr

let private exprTokens (s: string) =
    [ for m in Regex.Matches(s, @"\s*('(?:[^'\\]|\\.)*'|""(?:[^""\\]|\\.)*""|\d+|[A-Za-z_]\w*|==|!=|[.\[\]()=+,])") -> m.Groups[1].Value ]
    |> fun toks ->
        if String.Join("", toks) <> Regex.Replace(s, @"\s+", "") then failwith $"jinja subset: cannot tokenize '{s}'"
        toks

/// Recursive descent over the tokens of one expression.
let parseExpr (source: string) =
    let toks = exprTokens source |> Array.ofList
    let mutable i = 0
    let peek () = if i < toks.Length then toks[i] else ""
    let take expected =
        if peek () <> expected then failwith $"jinja subset: expected '{expected}' at '{peek ()}' in '{source}'"
        i <- i + 1
    let rec orExpr () =
        let mutable left = andExpr ()
        while peek () = "or" do
            i <- i + 1
            left <- Binary("or", left, andExpr ())
        left
    and andExpr () =
        let mutable left = notExpr ()
        while peek () = "and" do
            i <- i + 1
            left <- Binary("and", left, notExpr ())
        left
    and notExpr () =
        if peek () = "not" then
            i <- i + 1
            Not(notExpr ())
        else compare ()
    and compare () =
        let left = additive ()
        match peek () with
        | "==" | "!=" as op -> i <- i + 1; Binary(op, left, additive ())
        | "in" -> i <- i + 1; Binary("in", left, additive ())
        | "not" when i + 1 < toks.Length && toks[i + 1] = "in" -> i <- i + 2; Not(Binary("in", left, additive ()))
        | "is" ->
            i <- i + 1
            let negate = (peek () = "not")
            if negate then i <- i + 1
            take "string"
            if negate then Not(IsString left) else IsString left
        | _ -> left
    and additive () =
        let mutable left = postfix ()
        while peek () = "+" do
            i <- i + 1
            left <- Binary("+", left, postfix ())
        left
    and postfix () =
        let mutable e = primary ()
        let mutable go = true
        while go do
            match peek () with
            | "." -> i <- i + 1; e <- Attr(e, toks[i]); i <- i + 1
            | "[" -> i <- i + 1; let k = orExpr () in take "]"; e <- Index(e, k)
            | _ -> go <- false
        e
    and primary () =
        let t = peek ()
        i <- i + 1
        if t.StartsWith "'" || t.StartsWith "\"" then Lit(box (Regex.Unescape(t.Substring(1, t.Length - 2))))
        elif t.Length > 0 && Char.IsDigit t[0] then Lit(box (int t))
        elif t = "true" || t = "True" then Lit(box true)
        elif t = "false" || t = "False" then Lit(box false)
        elif t = "(" then let e = orExpr () in take ")"; e
        elif t = "namespace" then
            take "("
            let args = ResizeArray()
            while peek () <> ")" do
                let name = toks[i]
                i <- i + 1
                take "="
                args.Add((name, orExpr ()))
                if peek () = "," then i <- i + 1
            take ")"
            Namespace(List.ofSeq args)
        elif t.Length > 0 && (Char.IsLetter t[0] || t[0] = '_') then Var t
        else failwith $"jinja subset: unexpected '{t}' in '{source}'"
    let e = orExpr ()
    if i <> toks.Length then failwith $"jinja subset: trailing '{peek ()}' in '{source}'"
    e

/// The template as nodes (no whitespace control: chat templates that use {%- -%} are outside the subset).
let parse (template: string) =
    let segments =
        [ let mutable last = 0
          for m in Regex.Matches(template, @"\{\{(.*?)\}\}|\{%(.*?)%\}", RegexOptions.Singleline) do
              if m.Index > last then yield Choice1Of3(template.Substring(last, m.Index - last))
              if m.Groups[1].Success then yield Choice2Of3(m.Groups[1].Value.Trim()) else yield Choice3Of3(m.Groups[2].Value.Trim())
              last <- m.Index + m.Length
          if last < template.Length then yield Choice1Of3(template.Substring last) ]
        |> Array.ofList
    let mutable i = 0
    /// Nodes up to one of the closing tags; returns them and the tag that closed them.
    let rec block (closers: string list) : Node list * string =
        let nodes = ResizeArray()
        let mutable closedBy : string option = None
        while closedBy.IsNone && i < segments.Length do
            let s = segments[i]
            i <- i + 1
            match s with
            | Choice1Of3 text -> nodes.Add(Text text)
            | Choice2Of3 e -> nodes.Add(Output(parseExpr e))
            | Choice3Of3 tag ->
                let word = tag.Split(' ')[0]
                if List.contains word closers then closedBy <- Some tag
                elif word = "if" then
                    let branches = ResizeArray()
                    let mutable cond = parseExpr (tag.Substring 2)
                    let mutable elseBody = []
                    let mutable fin = false
                    while not fin do
                        let body, closer = block [ "elif"; "else"; "endif" ]
                        branches.Add((cond, body))
                        match closer.Split(' ')[0] with
                        | "elif" -> cond <- parseExpr (closer.Substring 4)
                        | "else" ->
                            let body, _ = block [ "endif" ]
                            elseBody <- body
                            fin <- true
                        | _ -> fin <- true
                    nodes.Add(If(List.ofSeq branches, elseBody))
                elif word = "for" then
                    let m = Regex.Match(tag, @"^for\s+(\w+)\s+in\s+(.+)$")
                    if not m.Success then failwith $"jinja subset: '{tag}'"
                    let body, _ = block [ "endfor" ]
                    nodes.Add(For(m.Groups[1].Value, parseExpr m.Groups[2].Value, body))
                elif word = "set" then
                    let m = Regex.Match(tag, @"^set\s+([\w.]+)\s*=\s*(.+)$")
                    if not m.Success then failwith $"jinja subset: '{tag}'"
                    nodes.Add(Set(m.Groups[1].Value.Split('.') |> List.ofArray, parseExpr m.Groups[2].Value))
                else failwith $"jinja subset: unsupported tag '{tag}'"
        if closedBy.IsNone && not closers.IsEmpty then failwith $"jinja subset: missing {closers}"
        List.ofSeq nodes, defaultArg closedBy ""
    fst (block [])

let private truthy (v: obj) =
    match v with
    | null -> false
    | :? bool as b -> b
    | :? string as s -> s <> ""
    | :? int as n -> n <> 0
    | :? System.Collections.ICollection as c -> c.Count > 0
    | _ -> true

let private member' (o: obj) (key: obj) : obj =
    match o, key with
    | (:? IDictionary<string, obj> as d), (:? string as k) -> match d.TryGetValue k with | true, v -> v | _ -> null
    | (:? IList<obj> as l), (:? int as k) -> l[k]
    | null, _ -> failwith $"jinja subset: member '{key}' of an undefined value"
    | _ -> null

let rec private eval (scope: Dictionary<string, obj>) (e: Expr) : obj =
    match e with
    | Lit v -> v
    | Var name -> match scope.TryGetValue name with | true, v -> v | _ -> null
    | Attr(x, name) -> member' (eval scope x) name
    | Index(x, k) -> member' (eval scope x) (eval scope k)
    | Namespace args -> box (Dictionary<string, obj>(dict [ for k, v in args -> k, eval scope v ]) :> IDictionary<string, obj>)
    | Not x -> box (not (truthy (eval scope x)))
    | IsString x -> box (eval scope x :? string)
    | Binary("and", a, b) -> box (truthy (eval scope a) && truthy (eval scope b))
    | Binary("or", a, b) -> box (truthy (eval scope a) || truthy (eval scope b))
    | Binary("==", a, b) -> box (Object.Equals(eval scope a, eval scope b))
    | Binary("!=", a, b) -> box (not (Object.Equals(eval scope a, eval scope b)))
    | Binary("in", a, b) ->
        match eval scope a, eval scope b with
        | (:? string as k), (:? IDictionary<string, obj> as d) -> box (d.ContainsKey k)
        | (:? string as k), (:? string as s) -> box (s.Contains k)
        | k, (:? IList<obj> as l) -> box (l.Contains k)
        | _ -> failwith "jinja subset: 'in' needs a dict, string or list"
    | Binary("+", a, b) ->
        match eval scope a, eval scope b with
        | (:? int as x), (:? int as y) -> box (x + y)
        | (:? string as x), (:? string as y) -> box (x + y)
        | _ -> failwith "jinja subset: '+' of mixed types"
    | Binary(op, _, _) -> failwith $"jinja subset: operator {op}"

let rec private run (scope: Dictionary<string, obj>) (out: StringBuilder) (nodes: Node list) =
    for node in nodes do
        match node with
        | Text t -> out.Append t |> ignore
        | Output e ->
            match eval scope e with
            | null -> ()
            | v -> out.Append(string v) |> ignore
        | If(branches, elseBody) ->
            match branches |> List.tryFind (fun (c, _) -> truthy (eval scope c)) with
            | Some(_, body) -> run scope out body
            | None -> run scope out elseBody
        | For(var, items, body) ->
            let list = eval scope items :?> IList<obj>
            // Jinja's for has its own scope: loop variables do not leak (namespaces are how templates carry state out).
            let saved = [ var; "loop" ] |> List.map (fun k -> k, (match scope.TryGetValue k with | true, v -> Some v | _ -> None))
            for idx in 0 .. list.Count - 1 do
                scope[var] <- list[idx]
                scope["loop"] <- box (Dictionary<string, obj>(dict [ "first", box (idx = 0); "last", box (idx = list.Count - 1); "index0", box idx ]) :> IDictionary<string, obj>)
                run scope out body
            for k, v in saved do
                match v with
                | Some x -> scope[k] <- x
                | None -> scope.Remove k |> ignore
        | Set([ name ], e) -> scope[name] <- eval scope e
        | Set([ ns; attr ], e) ->
            match scope.TryGetValue ns with
            | true, (:? IDictionary<string, obj> as d) -> d[attr] <- eval scope e
            | _ -> failwith $"jinja subset: '{ns}' is not a namespace"
        | Set(target, _) -> failwith $"jinja subset: set {String.Join('.', target)}"

/// Renders <paramref name="template"/> with the variables given (lists as obj lists, dicts as IDictionary<string,obj>).
let render (template: string) (variables: (string * obj) list) =
    let scope = Dictionary<string, obj>()
    for k, v in variables do scope[k] <- v
    let out = StringBuilder()
    run scope out (parse template)
    out.ToString()

/// A JSON-like dict for the template's variables.
let object (pairs: (string * obj) list) = box (Dictionary<string, obj>(dict pairs) :> IDictionary<string, obj>)
let list (items: obj list) = box (ResizeArray<obj>(items) :> IList<obj>)
