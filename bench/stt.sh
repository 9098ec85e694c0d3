#!/usr/bin/env bash
# bench/stt.sh - Hearth's stt-whisper engine against whisper.cpp's own C API,
# in one run.
#
# Both sides run the same whisper.cpp source (the copy vendored in the
# whisper-rs-sys crate Hearth builds with), the same model
# (models/whisper/ggml-tiny.en.bin), the same threads and the same decoding
# parameters, on the same clip: samples/jfk.wav (11 s); with --long also
# that clip three times over (33 s, so two 30 s windows).
#
#   hearth     stt-bench (bench/src/bin/stt_bench.rs): the release cdylib
#              opened by the host's loader (load, warmup, RUNS transcriptions)
#   whisper    bench/stt_whisper_ref.c linked against libwhisper built by
#              whisper.cpp's own CMake (Release, GGML_NATIVE=OFF,
#              GGML_OPENMP=OFF, as whisper-rs-sys builds it), cached in
#              $HEARTH_CACHE/whisper-cli-build
#   cold       one transcription in a fresh process right after load, no
#              warmup: `hearth transcribe --json` against the reference
#              with --no-warmup
#
# Rounds alternate the two sides so both see the same machine noise. The
# table gives medians of wall time and of process CPU time (all threads;
# less disturbed by other work on the machine than wall time, though ggml's
# spinning threads count too). The ratio is Hearth's median transcription
# time over whisper.cpp's (target <= 1.05).
#
# whisper.cpp's whisper-cli cannot be built here: the whisper.cpp copy in
# whisper-rs-sys ships without its examples/ directory. The C API driver
# does what whisper-cli does for one file, minus its output formatting.
#
# Usage: bench/stt.sh [--rounds N] [--runs N] [--threads N] [--long]
# Environment: CARGO_TARGET_DIR, HEARTH_CACHE (default ~/.cache/hearth),
# PYTHON (default python3). Raw results: bench/results/stt-<time>.jsonl.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${HEARTH_CACHE:-$HOME/.cache/hearth}
PYTHON=${PYTHON:-python3}
ROUNDS=3
RUNS=3
THREADS=2
LONG=0
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2;;
    --runs) RUNS=$2; shift 2;;
    --threads) THREADS=$2; shift 2;;
    --long) LONG=1; shift;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0;;
    *) echo "bench/stt.sh: unknown argument '$1' (see --help)" >&2; exit 2;;
  esac
done

say() { echo "bench/stt: $*" >&2; }
die() { echo "bench/stt: error: $*" >&2; exit 1; }

# Portable ggml on both sides (AVX2/FMA/F16C, not -march=native).
export GGML_NATIVE=OFF

# ---- model and clip ------------------------------------------------------------------------
MODEL=$ROOT/models/whisper/ggml-tiny.en.bin
CLIP=$ROOT/samples/jfk.wav
if [ ! -f "$MODEL" ] || [ ! -f "$CLIP" ]; then
  say "fetching the model and the clip (scripts/fetch-models.sh --only stt --only samples)"
  "$ROOT/scripts/fetch-models.sh" --only stt --only samples >&2
fi
[ -f "$MODEL" ] && [ -f "$CLIP" ] || die "model or clip missing after scripts/fetch-models.sh"

# ---- whisper.cpp reference -----------------------------------------------------------------
# The whisper-rs-sys version in Cargo.lock, and its vendored whisper.cpp.
SYS_VERSION=$(awk '/^name = "whisper-rs-sys"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' "$ROOT/Cargo.lock")
[ -n "$SYS_VERSION" ] || die "whisper-rs-sys not found in Cargo.lock (build hearth-stt-whisper once)"
find_src() { compgen -G "${CARGO_HOME:-$HOME/.cargo}/registry/src/*/whisper-rs-sys-$SYS_VERSION/whisper.cpp" | head -n1 || true; }
SRC=$(find_src)
if [ -z "$SRC" ]; then
  (cd "$ROOT" && cargo fetch -q) || die "cargo fetch failed"
  SRC=$(find_src)
fi
[ -n "$SRC" ] && [ -f "$SRC/include/whisper.h" ] || die "whisper.cpp source of whisper-rs-sys $SYS_VERSION not found"
BUILD=$CACHE/whisper-cli-build/whisper-rs-sys-$SYS_VERSION
REF=$BUILD/stt_whisper_ref
if [ ! -f "$BUILD/.built" ]; then
  say "building whisper.cpp from $SRC into $BUILD (once; about 2 min)"
  mkdir -p "$BUILD"
  cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
    -DGGML_NATIVE=OFF -DGGML_OPENMP=OFF -DGGML_METAL=OFF \
    -DWHISPER_BUILD_EXAMPLES=OFF -DWHISPER_BUILD_TESTS=OFF -DWHISPER_BUILD_SERVER=OFF >"$BUILD/build.log" 2>&1 \
    || { tail -20 "$BUILD/build.log" >&2; die "cmake configure failed (is cmake installed? scripts/install-deps.sh)"; }
  cmake --build "$BUILD" --target whisper -j 2 >>"$BUILD/build.log" 2>&1 || { tail -20 "$BUILD/build.log" >&2; die "cmake build failed"; }
  touch "$BUILD/.built"
fi
if [ ! -x "$REF" ] || [ "$ROOT/bench/stt_whisper_ref.c" -nt "$REF" ]; then
  mapfile -t LIBS < <(find "$BUILD" -name 'libwhisper.a'; find "$BUILD" -name 'libggml*.a' | sort -r)
  cc -O2 -o "$REF" "$ROOT/bench/stt_whisper_ref.c" -I"$SRC/include" -I"$SRC/ggml/include" \
    -Wl,--start-group "${LIBS[@]}" -Wl,--end-group -lstdc++ -lm -lpthread -ldl \
    || die "cannot compile bench/stt_whisper_ref.c"
fi

# ---- Hearth's side -------------------------------------------------------------------------
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
say "building hearth, hearth-stt-whisper and hearth-bench (release)"
BUILD_START=$(date +%s)
(cd "$ROOT" && cargo build --release -q -p hearth --bin hearth -p hearth-stt-whisper --lib -p hearth-bench --bin stt-bench) \
  || die "cargo build failed"
say "built in $(( $(date +%s) - BUILD_START )) s"
BENCH=$TARGET/release/stt-bench
HEARTH=$TARGET/release/hearth
[ -x "$BENCH" ] && [ -x "$HEARTH" ] && [ -f "$TARGET/release/libhearth_stt_whisper.so" ] \
  || die "build output missing under $TARGET/release"

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
cat > "$TMP/plugins.toml" <<EOF
[host]
plugin_dir = "$TARGET/release"

[stt]
plugin = "stt-whisper"

[stt.config]
model = "$MODEL"
threads = $THREADS
EOF

CLIPS=("$CLIP")
if [ "$LONG" = 1 ]; then
  # The clip three times over, for a transcription longer than one window.
  "$PYTHON" - "$CLIP" "$TMP/jfk-x3.wav" <<'EOF'
import sys, wave
with wave.open(sys.argv[1]) as w:
    params, frames = w.getparams(), w.readframes(w.getnframes())
with wave.open(sys.argv[2], "wb") as out:
    out.setparams(params)
    out.writeframes(frames * 3)
EOF
  CLIPS+=("$TMP/jfk-x3.wav")
fi

# ---- runs ----------------------------------------------------------------------------------
mkdir -p "$ROOT/bench/results"
RESULTS=$ROOT/bench/results/stt-$(date +%Y%m%d-%H%M%S).jsonl
say "$ROUNDS round(s) of $RUNS run(s) per clip, $THREADS thread(s); load average now: $(cut -d' ' -f1-3 /proc/loadavg)"
tag() { sed "s|^{|{\"who\":\"$1\",\"clip\":\"$(basename "$2")\",|"; }
for round in $(seq 1 "$ROUNDS"); do
  for clip in "${CLIPS[@]}"; do
    say "round $round/$ROUNDS, $(basename "$clip"): hearth"
    "$BENCH" -c "$TMP/plugins.toml" --runs "$RUNS" "$clip" 2>"$TMP/hearth.log" | tag hearth "$clip" >> "$RESULTS" \
      || { cat "$TMP/hearth.log" >&2; die "hearth bench failed"; }
    say "round $round/$ROUNDS, $(basename "$clip"): whisper.cpp"
    "$REF" "$MODEL" "$clip" --threads "$THREADS" --runs "$RUNS" | tag whisper "$clip" >> "$RESULTS"
  done
  say "round $round/$ROUNDS, cold: hearth transcribe"
  HEARTH_LOG=warn "$HEARTH" transcribe "$CLIP" -c "$TMP/plugins.toml" --json | tag hearth-cold "$CLIP" >> "$RESULTS"
  say "round $round/$ROUNDS, cold: whisper.cpp"
  "$REF" "$MODEL" "$CLIP" --threads "$THREADS" --runs 1 --no-warmup | tag whisper-cold "$CLIP" >> "$RESULTS"
done
say "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

# ---- table ---------------------------------------------------------------------------------
"$PYTHON" - "$RESULTS" <<'EOF'
import json, re, statistics, sys

rows = [json.loads(line) for line in open(sys.argv[1])]
def med(xs): return statistics.median(xs) if xs else float("nan")
def norm(t): return " ".join(re.sub(r"[^a-z0-9 ]", " ", t.lower()).split())

print()
print(f"{'clip':<12} {'engine':<44} {'load ms':>8} {'warm ms':>8} {'median ms':>10} {'min ms':>8} {'cpu ms':>8} {'RTF':>6} {'runs':>5}")
ratios = {}
for clip in dict.fromkeys(r["clip"] for r in rows if r["who"] in ("hearth", "whisper")):
    summary = {}
    for who in ("hearth", "whisper"):
        mine = [r for r in rows if r["who"] == who and r["clip"] == clip]
        runs = [ms for r in mine for ms in r["run_ms"]]
        cpu = [ms for r in mine for ms in r.get("cpu_ms", []) if ms is not None]
        s = summary[who] = {
            "engine": mine[0]["engine"], "load": med([r["load_ms"] for r in mine]), "cpu": med(cpu),
            "warm": med([r["warmup_ms"] for r in mine]), "median": med(runs), "min": min(runs),
            "audio": mine[0]["audio_seconds"], "n": len(runs), "texts": {norm(r["text"]) for r in mine},
        }
        print(f"{clip:<12} {s['engine']:<44} {s['load']:>8.0f} {s['warm']:>8.0f} {s['median']:>10.0f} {s['min']:>8.0f} "
              f"{s['cpu']:>8.0f} {s['median'] / 1e3 / s['audio']:>6.3f} {s['n']:>5}")
    same = summary["hearth"]["texts"] == summary["whisper"]["texts"] and len(summary["hearth"]["texts"]) == 1
    ratios[clip] = (summary["hearth"]["median"] / summary["whisper"]["median"], same)
    ratios[clip + ", cpu"] = (summary["hearth"]["cpu"] / summary["whisper"]["cpu"], None)

cold = {who: [r for r in rows if r["who"] == who] for who in ("hearth-cold", "whisper-cold")}
if all(cold.values()):
    h = med([r.get("transcribe_ms", 0) for r in cold["hearth-cold"]])
    w = med([ms for r in cold["whisper-cold"] for ms in r["run_ms"]])
    hl = med([r["load_ms"] for r in cold["hearth-cold"]])
    wl = med([r["load_ms"] for r in cold["whisper-cold"]])
    print(f"{'cold jfk':<12} {'hearth transcribe (fresh process, no warmup)':<44} {hl:>8.0f} {'-':>8} {h:>10.0f}")
    print(f"{'cold jfk':<12} {'whisper.cpp C API (fresh process, no warmup)':<44} {wl:>8.0f} {'-':>8} {w:>10.0f}")
    ratios["cold jfk"] = (h / w, None)
print()
for clip, (ratio, same) in ratios.items():
    note = "" if same is None else ("  same text" if same else "  TEXT DIFFERS")
    print(f"ratio hearth/whisper.cpp, median transcription time, {clip:<16} {ratio:.3f}  (target <= 1.05){note}")
print(f"raw results: {sys.argv[1]}")
EOF
