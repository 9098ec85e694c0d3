#!/usr/bin/env bash
# bench/tts.sh - Hearth's tts-piper engine against piper-tts 1.8, in one run.
#
# Both speak the same sentences (bench/tts-sentences.txt) with the same voice
# (models/piper/en_US-joe-medium.onnx) on the same ONNX Runtime (1.32.0: the
# library Hearth opens is the one inside the PyPI wheel piper-tts runs on).
# Each engine loads, warms up with "Hello world.", then synthesizes all the
# sentences RUNS times; this is repeated ROUNDS times in fresh processes,
# alternating engines so that both see the same machine noise. The table
# gives medians over all runs.
#
#   hearth       tts-bench (bench/src/bin/tts_bench.rs): the release cdylib
#                opened by the host's loader, default config (1 thread)
#   piper-tts    bench/tts_piper.py with piper-tts's default session options
#   piper-tts/1  the same with 1 intra-op thread, Hearth's default
#
# The ratio is Hearth's synthesis time over piper-tts's (default options),
# per second of audio produced (the voice's durations vary slightly from run
# to run); the target is <= 1.0. "load->warm" is the time from the start of
# load to the end of warmup.
#
# Usage: bench/tts.sh [--rounds N] [--runs N] [--sentences FILE]
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
SENTENCES=$ROOT/bench/tts-sentences.txt
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2;;
    --runs) RUNS=$2; shift 2;;
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
trap 'rm -rf "$TMP"' EXIT
cat > "$TMP/plugins.toml" <<EOF
[host]
plugin_dir = "$TARGET/release"

[tts]
plugin = "tts-piper"

[tts.config]
voice = "$VOICE"
runtime = "$RUNTIME"
EOF

# ---- runs ----------------------------------------------------------------------------------
mkdir -p "$ROOT/bench/results"
RESULTS=$ROOT/bench/results/tts-$(date +%Y%m%d-%H%M%S).jsonl
say "$ROUNDS round(s) of $RUNS run(s) over $(grep -cv '^\s*\(#\|$\)' "$SENTENCES") utterance(s) from $SENTENCES"
for round in $(seq 1 "$ROUNDS"); do
  say "round $round/$ROUNDS: hearth"
  "$BENCH" -c "$TMP/plugins.toml" --runs "$RUNS" "$SENTENCES" 2>"$TMP/hearth.log" | sed 's/^{/{"who":"hearth",/' >> "$RESULTS" \
    || { cat "$TMP/hearth.log" >&2; die "hearth bench failed"; }
  say "round $round/$ROUNDS: piper-tts"
  "$VENV/bin/python" "$ROOT/bench/tts_piper.py" "$VOICE" "$SENTENCES" --runs "$RUNS" \
    | sed 's/^{/{"who":"piper",/' >> "$RESULTS"
  say "round $round/$ROUNDS: piper-tts, 1 thread"
  "$VENV/bin/python" "$ROOT/bench/tts_piper.py" "$VOICE" "$SENTENCES" --runs "$RUNS" --threads 1 \
    | sed 's/^{/{"who":"piper1",/' >> "$RESULTS"
done

# ---- table ---------------------------------------------------------------------------------
"$PYTHON" - "$RESULTS" <<'EOF'
import json, statistics, sys

rows = [json.loads(line) for line in open(sys.argv[1])]
def med(xs): return statistics.median(xs) if xs else float("nan")

summary = {}
for who in ("hearth", "piper", "piper1"):
    mine = [r for r in rows if r["who"] == who]
    runs = [(ms, r["audio_seconds"]) for r in mine for ms in r["run_ms"]]
    summary[who] = {
        "engine": mine[0]["engine"],
        "load_to_warm": med([r["load_to_warm_ms"] for r in mine]),
        "load": med([r["load_ms"] for r in mine]),
        "warmup": med([r["warmup_ms"] for r in mine]),
        "synth": med([ms for ms, _ in runs]),
        "audio": med([a for _, a in runs]),
        "rtf": med([ms / 1e3 / a for ms, a in runs]),
        "first": med([x for r in mine for x in r["first_chunk_ms"]]),
        "n": len(runs),
    }

print()
print(f"{'engine':<62} {'load ms':>8} {'warm ms':>8} {'load->warm':>10} {'synth ms':>9} {'audio s':>8} {'RTF':>6} {'1st chunk':>9} {'runs':>5}")
for s in summary.values():
    print(f"{s['engine']:<62} {s['load']:>8.0f} {s['warmup']:>8.0f} {s['load_to_warm']:>10.0f} {s['synth']:>9.0f} "
          f"{s['audio']:>8.1f} {s['rtf']:>6.3f} {s['first']:>9.0f} {s['n']:>5}")
h, p, p1 = summary["hearth"], summary["piper"], summary["piper1"]
print()
print(f"ratio hearth/piper-tts (default options), synthesis time per audio second: {h['rtf'] / p['rtf']:.2f}  (target <= 1.0)")
print(f"ratio hearth/piper-tts (1 thread),        synthesis time per audio second: {h['rtf'] / p1['rtf']:.2f}")
print(f"ratio of median synthesis times (same sentences):                          {h['synth'] / p['synth']:.2f}")
print(f"load->warm: hearth {h['load_to_warm']:.0f} ms, piper-tts {p['load_to_warm']:.0f} ms")
print(f"raw results: {sys.argv[1]}")
EOF
