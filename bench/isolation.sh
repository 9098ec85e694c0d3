#!/usr/bin/env bash
# isolation.sh - what worker processes cost: the real engines in process and in a worker, timed
# alternately in one run (TTS synthesis, STT transcription of the JFK clip, chat time to first
# token on one llama-server), `hearth serve` exec -> READY with three no-op plugins in each mode,
# and the memory of idle workers. Release build; ends by itself (--timeout per step, --time-limit).
#
# Usage: bench/isolation.sh [--runs N] [--startup-runs N] [more: target/release/isolation-bench --help]
# Environment: CARGO_TARGET_DIR (default <repo>/target).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
SERVER=$ROOT/models/llama/bin/llama-server
MODEL=$ROOT/models/llama/SmolLM2-135M-Instruct.Q4_1.gguf
for f in "$SERVER" "$MODEL" "$ROOT/samples/jfk.wav"; do
  [ -e "$f" ] || { echo "isolation.sh: $f is missing: run scripts/fetch-models.sh" >&2; exit 1; }
done

echo "isolation.sh: building hearth, the plugins and the bench driver (release)" >&2
(cd "$ROOT" && cargo build --release -q -p hearth -p hearth-tts-piper -p hearth-stt-whisper \
  -p hearth-chat-http -p hearth-scripted-tts -p hearth-scripted-stt -p hearth-scripted-chat \
  -p hearth-bench --lib --bin hearth --bin isolation-bench)

# The default config names plugins by name: look them up in the release build.
CONFIG=$(mktemp --suffix=.toml -p "$ROOT")
trap 'rm -f "$CONFIG"' EXIT
sed "s|^\[host\]|[host]\nplugin_dir = \"$TARGET/release\"|" "$ROOT/plugins.toml" > "$CONFIG"

cd "$ROOT"
"$TARGET/release/isolation-bench" -c "$CONFIG" --wav samples/jfk.wav --server "$SERVER" --model "$MODEL" \
  --hearth "$TARGET/release/hearth" --plugin-dir "$TARGET/release" "$@"
