#!/usr/bin/env bash
# Runs every F# script of scripts/ with `dotnet fsi` and fails when one fails; scripts that need data get a tiny
# generated data set. CI runs it through the test list "Scripts".
#
#   scripts/run-scripts.sh [--no-build]
#
#   --no-build   use the existing Release build of the CLI instead of building it when sources changed
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="$root/src/MMedExpert.Cli/bin/Release/net10.0"
build=1
case "${1:-}" in
  --no-build) build=0 ;;
  "") ;;
  -h|--help) sed -n '2,7p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "run-scripts: unknown argument $1 (see --help)" >&2; exit 2 ;;
esac
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
export DOTNET_gcConcurrent=0   # see src/MMedExpert.Cli/MMedExpert.Cli.csproj (TorchSharp Scalars vs background GC)

cd "$root"
dotnet tool restore >/dev/null
if [ "$build" = 1 ]; then
  "$root/mmx" --help >/dev/null   # the launcher builds the CLI in Release when any source changed
elif [ ! -f "$bin/mmx.dll" ]; then
  echo "run-scripts: no build at $bin (run ./mmx --help once to build, or drop --no-build)" >&2; exit 1
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/mmx-scripts-XXXXXX")"
trap 'rm -rf "$work"' EXIT
failed=()
count=0

# run_one SCRIPT [ARGS...]: runs scripts/SCRIPT, prints ok or FAILED with the end of its output.
run_one() {
  local script="$1"; shift
  local log="$work/$(basename "$script").log"
  local start=$SECONDS rc=0
  count=$((count + 1))
  dotnet fsi "$root/scripts/$script" "$@" >"$log" 2>&1 || rc=$?
  if [ "$rc" = 0 ]; then
    echo "ok      $script ($((SECONDS - start)) s)"
  else
    failed+=("$script")
    echo "FAILED  $script ($((SECONDS - start)) s, exit code $rc):"
    tail -n 25 "$log" | sed 's/^/        /'
  fi
}

run_one new-advantage.fsx
run_one merge-experiment.fsx
run_one dev/make-sample-run.fsx "$work/sample-run"

# a tiny MedSynth set (128 items, 56 px) for the data inspection
if dotnet "$bin/mmx.dll" data synth --out "$work/medsynth" --n 128 --image-size 56 >"$work/synth.log" 2>&1; then
  run_one inspect-data.fsx "$work/medsynth"
  run_one trace-skills.fsx --reference "$work/medsynth"
else
  count=$((count + 1)); failed+=("inspect-data.fsx")
  echo "FAILED  inspect-data.fsx: generating its data set (mmx data synth) failed:"; tail -n 25 "$work/synth.log" | sed 's/^/        /'
fi

if [ ${#failed[@]} -gt 0 ]; then
  echo "run-scripts: ${#failed[@]} of $count script(s) failed: ${failed[*]}" >&2
  exit 1
fi
echo "run-scripts: $count script(s) ran"
