#!/usr/bin/env bash
# openai.sh - what the OpenAI-compatible endpoints add to the engines, in one run.
#
# Starts `hearth serve` (release) with plugins.toml's [tts] and [stt] (Piper en_US-joe-medium,
# Whisper tiny.en; chat off) on a free loopback port, loads the same two engines a second time in
# the driver the way the server runs them (each in a worker process), and times in every run, in
# an order that rotates from run to run:
#
#   - the TTS engine alone speaking three sentences (time to its first chunk, and to its end),
#     against POST /v1/audio/speech of the same text in pcm, wav, mp3, opus and flac (time to the
#     first byte of the body, and to its end);
#   - the STT engine alone transcribing samples/jfk.wav (11 s), against POST
#     /v1/audio/transcriptions of the same file (multipart, as the openai SDK sends it).
#
# Every request goes on a new connection (see openai_bench.rs: on a kept-alive one the server's
# last small write can wait ~40 ms for a delayed ACK, as it sets no TCP_NODELAY).
# Reports medians, the ratios (goals: speech first byte / engine first chunk <= 1.05,
# transcription endpoint / engine <= 1.05), wav total / pcm total, and the mp3/opus/flac encoding
# cost in ms per audio second: wall (per run: that format's total minus pcm's total, over the
# audio's length; median over runs) and server CPU (the hearth process's own threads, read from
# /proc/PID/task/*/schedstat around each request; the synthesis runs in its worker). Ends by
# itself: every step under --timeout, the whole under --time-limit (openai-bench --help).
#
# Usage: bench/openai.sh [--runs N] [--warmup N] [more: target/release/openai-bench --help]
# Environment: CARGO_TARGET_DIR (default <repo>/target). Raw results: bench/results/openai-<time>.jsonl.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
for f in "$ROOT/models/piper/en_US-joe-medium.onnx" "$ROOT/models/whisper/ggml-tiny.en.bin" "$ROOT/samples/jfk.wav"; do
  [ -e "$f" ] || { echo "openai.sh: $f is missing: run scripts/fetch-models.sh" >&2; exit 1; }
done

# Portable ggml (AVX2/FMA/F16C, not -march=native), as the other benchmarks build it.
export GGML_NATIVE=OFF
echo "openai.sh: building hearth, the tts and stt plugins and the bench driver (release)" >&2
(cd "$ROOT" && cargo build --release -q -p hearth -p hearth-tts-piper -p hearth-stt-whisper \
  -p hearth-bench --lib --bin hearth --bin openai-bench)

# plugins.toml with the plugins looked up in the release build and chat off (not needed here, and
# its llama-server would take the fixed port 8089).
CONFIG=$(mktemp --suffix=.toml -p "$ROOT")
trap 'rm -f "$CONFIG"' EXIT
sed -e "s|^\[host\]|[host]\nplugin_dir = \"$TARGET/release\"|" \
    -e "s|^\[chat\]$|[chat]\nenabled = false\nrequired = false|" "$ROOT/plugins.toml" > "$CONFIG"

mkdir -p "$ROOT/bench/results"
RESULTS=$ROOT/bench/results/openai-$(date +%Y%m%d-%H%M%S).jsonl
cd "$ROOT"
"$TARGET/release/openai-bench" -c "$CONFIG" --hearth "$TARGET/release/hearth" --wav samples/jfk.wav \
  --output "$RESULTS" "$@"
echo "raw results: $RESULTS"
