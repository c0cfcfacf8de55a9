#!/usr/bin/env python3
"""Section 8: an oncology_surgery expert's answers on MedSynth validation items, step by step of the compact trace.

Usage: python3 paper/learnability/pairings.py VAL_ONC_JSONL EVAL_DIR [EVAL_DIR ...]
For each `mmx eval` output folder: answer accuracy with its CI (results.json), how many outputs name the right
diagnosis after "Conclusion:", which pairings they write, and how often each pairing matches the guideline's truth
(derived from the item's diagnosis through MedSynth's oncology_surgery table, docs/data.md).
"""
import collections
import json
import re
import sys

# MedSynth's oncology_surgery guideline (docs/data.md): (nuclear size-age, cell shape-growth) pairings -> diagnosis
TABLE = {"Adenocarcinoma": ("concordant", "concordant"), "Leiomyosarcoma": ("concordant", "discordant"),
         "Tubular adenoma": ("discordant", "concordant"), "Leiomyoma": ("discordant", "discordant")}

items = {}
with open(sys.argv[1]) as f:
    for line in f:
        item = json.loads(line)
        items[item["id"]] = item
for folder in sys.argv[2:]:
    with open(f"{folder}/results.json") as f:
        results = json.load(f)
    with open(f"{folder}/predictions.jsonl") as f:
        predictions = [json.loads(line) for line in f]
    conclusion = first = second = 0
    written = collections.Counter()
    for p in predictions:
        item = items[p["id"]]
        truth = item["options"][item["answer"]]
        m = re.search(r"Conclusion:\s*([^.<]+)", p["output"])
        conclusion += bool(m and m.group(1).strip() == truth)
        m = re.search(r"Pairings:\s*([a-z]+),\s*([a-z]+)", p["output"])
        written[m.groups() if m else None] += 1
        if m:
            first += m.group(1) == TABLE[truth][0]
            second += m.group(2) == TABLE[truth][1]
    ci = results["ci95"]
    print(f"{folder}: answer {100 * results['accuracy']:.1f} [{100 * ci['low']:.1f}, {100 * ci['high']:.1f}] of {len(predictions)}; "
          f"conclusion right {conclusion}; pairing 1 (nuclear size-age) right {first}, pairing 2 (cell shape-growth) right {second}; "
          f"pairings written {dict(written)}")
