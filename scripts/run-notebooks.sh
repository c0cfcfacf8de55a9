#!/usr/bin/env bash
# Reruns every notebook under notebooks/ headless with dotnet-repl and fails when a cell fails.
#
#   scripts/run-notebooks.sh [--run DIR] [--out DIR] [--no-build] [--no-install] [NAME ...]
#
#   --run DIR     the run folder the notebooks read (docs/run-layout.md); default: the newest runs/*/ that is not a
#                 sample. Passed to the notebooks as MMX_RUN. Notebooks that need a run fail clearly without one.
#   --out DIR     where the executed notebooks (NAME.ipynb) and their charts (NAME/*.html, *.png) go; default notebooks/out
#   --no-build    use the existing Release build of the CLI instead of building it when sources changed
#   --no-install  never install chromium (charts are then written as HTML only)
#   NAME          run only the notebooks whose file name contains NAME (e.g. 01), or the notebook file NAME.ipynb
#
# What it does: restores the pinned tools (dotnet-repl), builds the CLI in Release (its output folder holds every project
# assembly, TorchSharp with its patched native library, and Plotly.NET), stages those assemblies for the notebooks,
# installs Debian's chromium when it is missing (for PNG charts), then runs each notebook with
#   dotnet repl --run NOTEBOOK --exit-after-run --output-path OUT/NOTEBOOK
# A notebook fails when dotnet-repl exits non-zero or its output holds an error cell (checked both ways, since a
# notebook that stops early may still exit 0 in some dotnet-repl versions).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
notebooks="$root/notebooks"
bin="$root/src/MMedExpert.Cli/bin/Release/net10.0"
out="$notebooks/out"
run=""
build=1
install=1
filters=()
timeout_s="${MMX_NOTEBOOK_TIMEOUT:-900}"

usage() { sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --run) [ $# -ge 2 ] || { echo "run-notebooks: --run needs a folder" >&2; exit 2; }; run="$2"; shift 2 ;;
    --out) [ $# -ge 2 ] || { echo "run-notebooks: --out needs a folder" >&2; exit 2; }; out="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    --no-install) install=0; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "run-notebooks: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) filters+=("$1"); shift ;;
  esac
done

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_INTERACTIVE_CLI_TELEMETRY_OPTOUT=1
export DOTNET_gcConcurrent=0   # see src/MMedExpert.Cli/MMedExpert.Cli.csproj (TorchSharp Scalars vs background GC)

# Paths given on the command line are relative to where the runner was called from.
if [ -n "$run" ]; then
  [ -d "$run" ] || { echo "run-notebooks: --run $run: no such folder" >&2; exit 2; }
  run="$(cd "$run" && pwd)"
fi
mkdir -p "$out"
out="$(cd "$out" && pwd)"
files=()
for f in "${filters[@]}"; do   # a NAME that is a notebook file runs that file (e.g. one outside notebooks/)
  if [[ "$f" == *.ipynb ]]; then
    [ -f "$f" ] || { echo "run-notebooks: $f: no such notebook" >&2; exit 2; }
    files+=("$(cd "$(dirname "$f")" && pwd)/$(basename "$f")")
  fi
done

# ---- tools and build ----------------------------------------------------------------------------------------------
cd "$root"
dotnet tool restore >/dev/null
if [ "$build" = 1 ]; then
  "$root/mmx" --help >/dev/null   # the launcher builds the CLI in Release when any source changed
elif [ ! -f "$bin/mmx.dll" ]; then
  echo "run-notebooks: no build at $bin (run ./mmx --help once to build, or drop --no-build)" >&2; exit 1
fi

# ---- the assemblies notebooks reference -----------------------------------------------------------------------------
# dotnet-repl 0.3.259 hosts FSharp.Core 10.0; the build's FSharp.Core 10.1 next to the referenced assemblies makes the
# F# kernel try to load it and fail ("manifest definition does not match"). So notebooks reference a mirror of the build
# folder without FSharp.Core.dll (symlinks; the runtimes/ link keeps TorchSharp's patched native library reachable).
lib="$notebooks/.lib"
mkdir -p "$lib"
for f in "$bin"/*; do
  name="$(basename "$f")"
  [ "$name" = FSharp.Core.dll ] && continue
  [ "$(readlink "$lib/$name" 2>/dev/null)" = "$f" ] || ln -sfn "$f" "$lib/$name"   # untouched when current (runs may overlap)
done
for link in "$lib"/*; do [ -e "$link" ] || rm -f "$link"; done   # drop links to files the build no longer has

# ---- chromium for PNG charts -----------------------------------------------------------------------------------------
find_chromium() { command -v chromium || command -v chromium-browser || command -v google-chrome || true; }
chromium="${MMX_CHROMIUM:-$(find_chromium)}"
if [ -z "$chromium" ] && [ "$install" = 1 ] && command -v apt-get >/dev/null; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo -n"
  echo "run-notebooks: installing chromium (apt-get) for PNG charts..." >&2
  if $sudo apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null 2>&1; then
    chromium="$(find_chromium)"
  else
    echo "run-notebooks: chromium could not be installed; charts are written as HTML only" >&2
  fi
fi
[ -n "$chromium" ] || echo "run-notebooks: no chromium; charts are written as HTML only" >&2

# ---- the run folder ------------------------------------------------------------------------------------------------
# A sample run (scripts/dev/make-sample-run.fsx) carries SAMPLE-RUN-FAKE-DATA and is never picked by default.
if [ -z "$run" ]; then
  if [ -d "$root/runs" ]; then
    while IFS= read -r d; do
      [ -f "$d/SAMPLE-RUN-FAKE-DATA" ] && continue
      run="${d%/}"; break
    done < <(ls -1td "$root"/runs/*/ 2>/dev/null)
  fi
fi
if [ -n "$run" ]; then echo "run-notebooks: run folder $run" >&2
else echo "run-notebooks: no run folder (./mmx pipeline writes runs/<name>/; or pass --run DIR): notebooks that read a run will fail" >&2; fi

# ---- the notebooks ----------------------------------------------------------------------------------------------------
selected=("${files[@]}")
for nb in "$notebooks"/*.ipynb; do
  name="$(basename "$nb" .ipynb)"
  if [ ${#filters[@]} -gt 0 ]; then
    keep=0; for f in "${filters[@]}"; do [[ "$f" != *.ipynb && "$name" == *"$f"* ]] && keep=1; done
    [ "$keep" = 1 ] || continue
  fi
  selected+=("$nb")
done
[ ${#selected[@]} -gt 0 ] || { echo "run-notebooks: no notebook matches ${filters[*]:-}" >&2; exit 2; }

failed=()
for nb in "${selected[@]}"; do
  name="$(basename "$nb" .ipynb)"
  result="$out/$name.ipynb"
  log="$out/$name.log"
  rm -rf "$result" "$out/$name"   # no stale charts from an earlier run next to this run's
  mkdir -p "$out/$name"
  start=$SECONDS
  set +e
  # cwd = notebooks/, so `#load "NotebookKit.fsx"` resolves as it does in an editor.
  (cd "$notebooks" && MMX_REPO="$root" MMX_RUN="$run" MMX_OUT="$out/$name" MMX_CHROMIUM="$chromium" \
     timeout "$timeout_s" dotnet repl --run "$nb" --exit-after-run --output-path "$result") >"$log" 2>&1
  rc=$?
  set -e
  seconds=$((SECONDS - start))
  errors=0
  [ -f "$result" ] && errors=$(grep -c '"output_type": *"error"' "$result" || true)
  if [ "$rc" = 0 ] && [ -f "$result" ] && [ "$errors" = 0 ]; then
    echo "ok      $name (${seconds} s) -> $result"
  else
    failed+=("$name")
    why="exit code $rc"
    [ "$rc" = 124 ] && why="timed out after ${timeout_s} s"
    [ -f "$result" ] || why="$why, no output notebook"
    [ "$errors" != 0 ] && why="$why, $errors cell(s) with errors"
    echo "FAILED  $name (${seconds} s): $why; log $log"
    if [ -f "$result" ]; then   # the first error's message (later cells often fail only because it did)
      grep -o '"evalue": *"[^"]*' "$result" | head -n 1 | sed -e 's/"evalue": *"/        /' -e 's/\\n.*//' | cut -c1-600
    fi
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "run-notebooks: ${#failed[@]} of ${#selected[@]} notebook(s) failed: ${failed[*]}" >&2
  exit 1
fi
echo "run-notebooks: ${#selected[@]} notebook(s) ran; outputs in $out"
