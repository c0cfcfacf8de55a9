/// The serving slot cache (Serving/Server/SlotCache) driven step by step as the engine drives it, with fixed tokens
/// (teacher forcing) so every step can be checked against a full forward pass without a cache: sequences that join late
/// (a cursor jump), leave early (a free row reused), and a compaction while the oldest row still starts at column 0.
module MMedExpert.Tests.SlotCacheTests

open System
open Expecto
open TorchSharp
open MMedExpert.Core.Model
open MMedExpert.Core.Model.Text
open MMedExpert.Serving.Server

/// A sequence fed fixed tokens: its prompt, the tokens it is fed after it, how many were fed, and its slot row.
type private Fed = { Prompt: int[]; Tokens: int[]; mutable Count: int; mutable Row: int }

/// Logits [vocab] after <paramref name="ids"/> by one forward pass over the whole sequence (no cache).
let private fullPassLogits (model: Qwen25VLForConditionalGeneration) (ids: int[]) =
    use _ = torch.no_grad ()
    let input = torch.tensor(Array.map int64 ids).view(1L, int64 ids.Length)
    model.forward(input).narrow(1, int64 ids.Length - 1L, 1L).reshape(-1L)

[<Tests>]
let tests =
    testList "SlotCache" [
        test "rows joining late, leaving early and packed while the oldest starts at column 0 decode as a full pass does" {
            use model = TinyVlm.model 11L
            model.eval ()
            let config = model.Config
            let rng = Random 5
            let tokens n = Array.init n (fun _ -> rng.Next(0, 250))
            // A: admitted on an empty cache (column 0); B: admitted with a cursor jump (its prompt is longer than the
            // cursor), then finishes; C: takes B's row. A and C are alive when the cursor reaches the capacity.
            let a = { Prompt = tokens 12; Tokens = tokens 26; Count = 0; Row = -1 }
            let b = { Prompt = tokens 20; Tokens = tokens 5; Count = 0; Row = -1 }
            let c = { Prompt = tokens 6; Tokens = tokens 18; Count = 0; Row = -1 }
            use slots = new SlotCache(config, 3, 40L, model.DType, model.Device)
            use _ = torch.no_grad ()
            let admit (s: Fed) =
                let n = int64 s.Prompt.Length
                use prompt = new KvCache(config, 1L, n, model.DType, model.Device)
                let struct (_, deltas) = model.Prefill(torch.tensor(Array.map int64 s.Prompt).view(1L, n), cache = prompt)
                slots.ReserveFor n
                s.Row <- slots.Place(prompt, deltas.[0L].item<int64> ())
            let mutable worst = 0.0
            let step (live: Fed list) =
                let struct (mask, deltas, rows) = slots.PrepareStep model.Device
                let feed = Array.create rows (int64 config.PaddingTokenId)
                for s in live do feed[s.Row] <- int64 s.Tokens[s.Count]
                use view = slots.Cache.Rows(int64 rows)
                let hidden = model.DecodeStep(torch.tensor(feed).view(int64 rows, 1L), deltas, view, mask)
                slots.CommitStep()
                let logits = model.Logits(hidden.squeeze 1)
                for s in live do
                    s.Count <- s.Count + 1
                    let expected = fullPassLogits model (Array.append s.Prompt s.Tokens[.. s.Count - 1])
                    worst <- max worst (logits.[int64 s.Row].sub(expected).abs().max().item<float32> () |> float)
            admit a
            for _ in 1 .. 5 do step [ a ]
            Expect.equal slots.Cursor 17L "A alone: prompt + 5 tokens"
            admit b
            Expect.equal slots.Cursor 20L "B's 20-token prompt made the cursor jump over 3 columns"
            Expect.equal (slots.StartOf a.Row, slots.StartOf b.Row) (0L, 0L) "both rows start at column 0"
            for _ in 1 .. 5 do step [ a; b ]
            slots.Free b.Row
            admit c
            Expect.equal c.Row b.Row "C reuses B's row"
            for _ in 1 .. 15 do step [ a; c ]
            Expect.equal slots.Cursor 40L "the cursor is at the capacity"
            Expect.equal slots.Compactions 0 "no compaction yet"
            step [ a; c ]
            Expect.equal slots.Compactions 1 "packed once"
            // A holds 12 + 25 live columns (the jump's 3 are gone), so the cursor moved back to 37 before this step.
            Expect.equal slots.Cursor 38L "packed to A's 37 live columns, then one step"
            Expect.equal (slots.StartOf a.Row) 0L "A still starts at column 0"
            Expect.equal (slots.StartOf c.Row) (37L - 6L - 15L) "C's 21 live columns end at the new cursor"
            slots.Free a.Row
            for _ in 1 .. 2 do step [ c ]
            Expect.equal a.Count a.Tokens.Length "A fed all its tokens"
            Expect.equal c.Count c.Tokens.Length "C fed all its tokens"
            Expect.isLessThan worst 1e-4 $"every step's logits match a full pass (worst |Δ| {worst:g3})"
        }
    ]
