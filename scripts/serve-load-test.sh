#!/usr/bin/env bash
# Load test of `mmx serve` as its own process, over HTTP on loopback: starts the server on a free port, waits until it
# answers /health, runs `mmx bench serve --endpoint` against it (R requests from one client, then from N concurrent
# clients, each with an image: requests/s, p50/p99 latency, batching speed-up, failures), and stops the server.
# Usage: scripts/serve-load-test.sh [--model DIR] [--clients N] [--requests R] [--max-tokens T] [--json]
# Exit status: the bench's (1 when any request failed), or 1 when the server did not come up.
set -euo pipefail
cd "$(dirname "$0")/.."
model="models/medsynth-base"
bench_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --model) model="$2"; shift 2 ;;
    *) bench_args+=("$1"); shift ;;
  esac
done
./mmx info >/dev/null 2>&1 || { echo "serve-load-test: mmx does not build:" >&2; ./mmx info; exit 1; }   # build once, before the server and the bench
log=$(mktemp)
# Port 0: the server takes a free port and prints its address ("serving NAME ... on http://127.0.0.1:PORT/v1 ...").
./mmx serve --model "$model" --host 127.0.0.1 --port 0 >"$log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -f "$log"' EXIT
address=""
for _ in $(seq 1 240); do
  address=$(grep -o 'http://127\.0\.0\.1:[0-9]*/' "$log" | head -n 1 || true)
  if [ -n "$address" ] && curl -sf "${address}health" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$server" 2>/dev/null; then echo "serve-load-test: the server exited:" >&2; cat "$log" >&2; exit 1; fi
  address=""
  sleep 0.5
done
[ -n "$address" ] || { echo "serve-load-test: the server did not answer within 120 s" >&2; cat "$log" >&2; exit 1; }
./mmx bench serve --endpoint "$address" "${bench_args[@]}"
