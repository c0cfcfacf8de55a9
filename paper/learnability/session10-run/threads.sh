#!/usr/bin/env bash
# One DSA job at 2 threads vs two concurrent jobs at 1 thread each, and one at 1 thread (60 PiSSA steps, oncology).
# Run from the repository root after a Release build, e.g. DATA=runs/default/data BASE=models/medsynth-base. Session 10
# measured it at f4913f4 with the data of learnability section 8 and the base of section 6 (29.6 / 33.8 / 33.6 s).
export OMP_WAIT_POLICY=PASSIVE DOTNET_gcConcurrent=0
B="dotnet ./src/MMedExpert.Cli/bin/Release/net10.0/mmx.dll"
run() { $B --threads $1 dsa --data ${DATA:?a MedSynth data folder}/sft.jsonl --base ${BASE:?a base model folder} --out /tmp/par-$2 --specialties oncology_surgery --init pissa --steps 60 --batch-size 8 --lr 2e-3 --trace compact --dtype bf16 > /tmp/par-$2.log 2>&1; }
rm -rf /tmp/par-*
s=$(date +%s.%N); run 2 a; e=$(date +%s.%N); echo "one job, 2 threads: $(echo "$e - $s" | bc) s"
s=$(date +%s.%N); run 1 b & run 1 c & wait; e=$(date +%s.%N); echo "two jobs, 1 thread each: $(echo "$e - $s" | bc) s"
s=$(date +%s.%N); run 1 d; e=$(date +%s.%N); echo "one job, 1 thread: $(echo "$e - $s" | bc) s"
