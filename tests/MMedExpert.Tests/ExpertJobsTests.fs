/// The pipeline's expert-level parallelism (ExpertJobs): results in the items' order, each job on its share of the torch
/// threads, the first failure rethrown as itself, and the calling thread's torch setting left as it was.
module MMedExpert.Tests.ExpertJobsTests

open System
open Expecto
open TorchSharp
open MMedExpert.Cli.Pipeline

[<Tests>]
let tests =
    testSequenced <| testList "ExpertJobs" [
        test "two jobs return every result in the items' order, each job on half the threads" {
            let before = torch.get_num_threads ()
            torch.set_num_threads 2
            try
                let items = [ 0 .. 6 ] |> List.toArray :> Collections.Generic.IReadOnlyList<int>
                let seen = Collections.Concurrent.ConcurrentBag<int * int>()
                let results =
                    ExpertJobs.Run(items, 2, fun i _ ->
                        seen.Add((i, torch.get_num_threads ()))
                        // real torch work on the job's thread: sum of 0..i
                        use t = torch.arange(int64 (i + 1), dtype = torch.float32)
                        t.sum().item<float32>() |> int)
                Expect.sequenceEqual results [ 0; 1; 3; 6; 10; 15; 21 ] "results in the items' order"
                Expect.equal seen.Count 7 "every item ran once"
                for (i, threads) in seen do Expect.equal threads 1 $"item {i} ran with 1 of the 2 threads"
                Expect.equal (torch.get_num_threads ()) 2 "the caller's thread count is restored"
            finally
                torch.set_num_threads before
        }

        test "one job runs in order on the calling thread" {
            let caller = Threading.Thread.CurrentThread.ManagedThreadId
            let items = [| "a"; "b"; "c" |] :> Collections.Generic.IReadOnlyList<string>
            let results = ExpertJobs.Run(items, 1, fun s _ -> (s, Threading.Thread.CurrentThread.ManagedThreadId))
            Expect.sequenceEqual (results |> Seq.map fst) [ "a"; "b"; "c" ] "order"
            for (_, id) in results do Expect.equal id caller "on the calling thread"
        }

        test "a failing job's own exception reaches the caller, and no new job starts after it" {
            let items = [| 0 .. 9 |] :> Collections.Generic.IReadOnlyList<int>
            let started = Collections.Concurrent.ConcurrentBag<int>()
            let e =
                Expect.throwsC
                    (fun () ->
                        ExpertJobs.Run(items, 2, fun i _ ->
                            started.Add i
                            if i = 1 then raise (PipelineException "expert pediatrics: corrupt adapter")
                            Threading.Thread.Sleep 50
                            i) |> ignore)
                    id
            Expect.isTrue (e :? PipelineException) $"the job's own exception type, not an AggregateException (got {e.GetType().Name})"
            Expect.equal e.Message "expert pediatrics: corrupt adapter" "its message"
            Expect.isLessThan started.Count 10 "the remaining jobs were not started"
        }

        test "jobs below 1 are an error naming the value" {
            let e = Expect.throwsC (fun () -> ExpertJobs.Run([| 1 |], 0, fun i _ -> i) |> ignore) id
            Expect.stringContains e.Message "got 0" "names the value"
        }
    ]
