#!/usr/bin/env bash
# bench/tts.sh - Hearth's tts-piper engine against piper-tts 1.8, in one run,
# on an idle machine and under a fixed background load.
#
# Both speak the same sentences (bench/tts-sentences.txt) with the same voice
# (models/piper/en_US-joe-medium.onnx) on the same ONNX Runtime (1.32.0: the
# library Hearth opens is the one inside the PyPI wheel piper-tts runs on).
# Each engine loads, warms up with "Hello world.", then synthesizes all the
# sentences RUNS times; this is repeated ROUNDS times in fresh processes,
# alternating engines so that all see the same machine noise, first with the
# machine idle, then with a background load the script starts and stops
# itself: LOAD busy-looping processes (default 1, one busy core).
#
#   hearth            tts-bench (bench/src/bin/tts_bench.rs): the release
#                     cdylib opened by the host's loader, default config
#                     (streamed: a split graph, a worker per core)
#   hearth no spin    the same with spinning = false
#   hearth 1 thread   the same with threads = 1 (one worker)
#   hearth whole      the same with stream = false: the original graph, one
#                     inference per sentence, as piper-tts runs it
#   piper-tts         bench/tts_piper.py with piper-tts's default session
#                     options (what its users get)
#
# The table gives, per condition, medians over all runs: RTF (synthesis time
# per second of audio; the voice's durations vary slightly from run to run)
# and first chunk (from the call to the first audio of each utterance), and
# each Hearth variant's ratios to piper-tts in the same condition. Goals for
# the default: RTF ratio <= 0.9 and first-chunk ratio <= 1.0 in both.
#
# Usage: bench/tts.sh [--rounds N] [--runs N] [--load N] [--sentences FILE]
# Environment: CARGO_TARGET_DIR, HEARTH_CACHE (default ~/.cache/hearth),
# PYTHON (for the venv, default python3).
# The piper-tts venv lives in $HEARTH_CACHE/bench-venv (made once, offline
# afterwards). Raw results: bench/results/tts-<time>.jsonl.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${HEARTH_CACHE:-$HOME/.cache/hearth}
PYTHON=${PYTHON:-python3}
ROUNDS=3
RUNS=3
LOAD=1
SENTENCES=$ROOT/bench/tts-sentences.txt
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2;;
    --runs) RUNS=$2; shift 2;;
    --load) LOAD=$2; shift 2;;
    --sentences) SENTENCES=$(cd "$(dirname "$2")" && pwd)/$(basename "$2"); shift 2;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0;;
    *) echo "bench/tts.sh: unknown argument '$1' (see --help)" >&2; exit 2;;
  esac
done

say() { echo "bench/tts: $*" >&2; }
die() { echo "bench/tts: error: $*" >&2; exit 1; }

# ---- models --------------------------------------------------------------------------------
VOICE=$ROOT/models/piper/en_US-joe-medium.onnx
RUNTIME=$ROOT/models/onnxruntime/libonnxruntime.so.1.32.0
if [ ! -f "$VOICE" ] || [ ! -f "$VOICE.json" ] || [ ! -f "$RUNTIME" ]; then
  say "fetching the voice and ONNX Runtime (scripts/fetch-models.sh --only tts)"
  "$ROOT/scripts/fetch-models.sh" --only tts >&2
fi
[ -f "$VOICE" ] && [ -f "$RUNTIME" ] || die "models missing after scripts/fetch-models.sh --only tts"

# ---- piper-tts venv ------------------------------------------------------------------------
VENV=$CACHE/bench-venv
ORT_WHEEL=$(compgen -G "$CACHE/downloads/pypi/onnxruntime-1.32.0-*.whl" | head -n1 || true)
if ! "$VENV/bin/python" -c 'import piper, onnxruntime, numpy; assert onnxruntime.__version__ == "1.32.0"' 2>/dev/null; then
  say "making the piper-tts venv in $VENV"
  "$PYTHON" -m venv "$VENV" || die "cannot make a venv with $PYTHON (install python3-venv)"
  export PIP_DISABLE_PIP_VERSION_CHECK=1
  # --no-deps: piper-tts needs only these at run time; its other requirements
  # are for training and other languages.
  "$VENV/bin/pip" install -q --no-deps "${ORT_WHEEL:-onnxruntime==1.32.0}" 'piper-tts==1.8.*' numpy 'pathvalidate<4,>=3' >&2 \
    || die "pip install failed (is PyPI reachable?)"
fi
"$VENV/bin/python" -c 'import piper, onnxruntime; assert onnxruntime.__version__ == "1.32.0"' \
  || die "the venv $VENV is broken: delete it and re-run"

# ---- Hearth's side -------------------------------------------------------------------------
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
say "building hearth-tts-piper and hearth-bench (release)"
BUILD_START=$(date +%s)
(cd "$ROOT" && cargo build --release -q -p hearth-tts-piper --lib -p hearth-bench --bin tts-bench) || die "cargo build failed"
say "built in $(( $(date +%s) - BUILD_START )) s"
BENCH=$TARGET/release/tts-bench
[ -x "$BENCH" ] && [ -f "$TARGET/release/libhearth_tts_piper.so" ] || die "build output missing under $TARGET/release"

TMP=$(mktemp -d)
# shellcheck source=bench/load.sh
source "$ROOT/bench/load.sh"
trap 'stop_load; rm -rf "$TMP"' EXIT
config() { # config NAME EXTRA-TOML-LINE
  cat > "$TMP/$1.toml" <<EOF
[host]
plugin_dir = "$TARGET/release"

[tts]
plugin = "tts-piper"

[tts.config]
voice = "$VOICE"
runtime = "$RUNTIME"
$2
EOF
}
config hearth ""
config nospin "spinning = false"
config hearth1 "threads = 1"
config whole "stream = false"

# ---- runs ----------------------------------------------------------------------------------
mkdir -p "$ROOT/bench/results"
RESULTS=$ROOT/bench/results/tts-$(date +%Y%m%d-%H%M%S).jsonl
tag() { sed "s/^{/{\"who\":\"$1\",\"condition\":\"$2\",/" >> "$RESULTS"; }
hearth_run() { # hearth_run WHO CONFIG CONDITION
  timeout 300 "$BENCH" -c "$TMP/$2.toml" --runs "$RUNS" --timeout 60s --time-limit 5m "$SENTENCES" \
    2>"$TMP/hearth.log" | tag "$1" "$3" || { cat "$TMP/hearth.log" >&2; die "hearth bench ($1, $3) failed"; }
}
piper_run() { # piper_run CONDITION
  timeout 300 "$VENV/bin/python" "$ROOT/bench/tts_piper.py" "$VOICE" "$SENTENCES" --runs "$RUNS" \
    2>"$TMP/piper.log" | tag piper "$1" || { cat "$TMP/piper.log" >&2; die "piper-tts bench ($1) failed"; }
}
say "$ROUNDS round(s) of $RUNS run(s) over $(grep -cv '^\s*\(#\|$\)' "$SENTENCES") utterance(s) from $SENTENCES"
for condition in idle load; do
  if [ "$condition" = load ]; then
    say "starting the background load: $LOAD busy-looping process(es)"
    start_load "$LOAD"
  fi
  for round in $(seq 1 "$ROUNDS"); do
    say "$condition, round $round/$ROUNDS"
    hearth_run hearth hearth "$condition"
    piper_run "$condition"
    hearth_run nospin nospin "$condition"
    hearth_run hearth1 hearth1 "$condition"
    hearth_run whole whole "$condition"
  done
  stop_load
done

# ---- table ---------------------------------------------------------------------------------
"$PYTHON" - "$RESULTS" "$LOAD" <<'EOF'
import json, statistics, sys

rows = [json.loads(line) for line in open(sys.argv[1])]
def med(xs): return statistics.median(xs) if xs else float("nan")
names = {"hearth": "hearth (default)", "nospin": "hearth, spinning = false",
         "hearth1": "hearth, threads = 1", "whole": "hearth, stream = false",
         "piper": "piper-tts 1.8 (default options)"}

def summary(who, condition):
    mine = [r for r in rows if r["who"] == who and r["condition"] == condition]
    runs = [(ms, r["audio_seconds"]) for r in mine for ms in r["run_ms"]]
    return {
        "engine": mine[0]["engine"],
        "rtf": med([ms / 1e3 / a for ms, a in runs]),
        "first": med([x for r in mine for x in r["first_chunk_ms"]]),
        "load_to_warm": med([r["load_to_warm_ms"] for r in mine]),
        "chunks": mine[-1]["sentences"],
        "n": len(runs),
    }

print()
print(f"{'condition':<10} {'engine':<32} {'RTF':>7} {'1st chunk ms':>12} {'RTF ratio':>9} {'1st ratio':>9} {'chunks':>6} {'runs':>5} {'load->warm ms':>13}")
for condition in ("idle", "load"):
    base = summary("piper", condition)
    for who in ("hearth", "nospin", "hearth1", "whole", "piper"):
        s = summary(who, condition)
        print(f"{condition:<10} {names[who]:<32} {s['rtf']:>7.4f} {s['first']:>12.0f} "
              f"{s['rtf'] / base['rtf']:>9.2f} {s['first'] / base['first']:>9.2f} {s['chunks']:>6} {s['n']:>5} {s['load_to_warm']:>13.0f}")
print()
print(f"load = {sys.argv[2]} busy-looping process(es) beside the engine; ratios are to piper-tts in the same condition")
print(f"engines: hearth = {summary('hearth', 'idle')['engine']}; piper-tts = {summary('piper', 'idle')['engine']}")
print(f"raw results: {sys.argv[1]}")
EOF
