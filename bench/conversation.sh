#!/usr/bin/env bash
# Conversation latency on the real default engines (docs/benchmarks.md):
# speaks samples/jfk.wav into /ws/conversation RUNS times and compares the
# time to first audio with the sum of its parts (push-to-talk); then streams
# it hands-free in real time, RUNS times each way in alternation, and
# compares the time from the end of the clip to the first reply audio when
# the speech is transcribed as it is spoken (incremental) and when it is
# transcribed at the end (target ratio <= 0.6), with the VAD's real-time
# factor. With LOAD > 0 the hands-free case runs again beside LOAD
# busy-looping processes (bench/load.sh), the "one core busy" figures.
# Usage: bench/conversation.sh [RUNS [LOAD]]   (defaults: 5, 0)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RUNS=${1:-5}
LOAD=${2:-0}
# shellcheck source=bench/load.sh
source bench/load.sh
export GGML_NATIVE=OFF
./scripts/fetch-models.sh >/dev/null
cargo build --release -q --workspace
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
HEARTH_LOG=warn ./target/release/hearth serve --config plugins.toml --listen "127.0.0.1:$port" &
pid=$!
trap 'stop_load; kill $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT
# READY does not wait for the optional STT; this benchmark needs it.
stt_ready() {
  curl -s "http://127.0.0.1:$port/api/ready" \
    | python3 -c 'import json,sys; d=json.load(sys.stdin); s=d["services"]; sys.exit(0 if d["ready"] and s["stt"]["status"] == "ready" and s["vad"]["status"] == "ready" else 1)'
}
for _ in $(seq 600); do stt_ready 2>/dev/null && break; sleep 0.2; done
stt_ready || { echo "Hearth (with STT and VAD) did not become ready" >&2; exit 1; }
hands_free() {
  ./target/release/hands-free-latency "ws://127.0.0.1:$port/ws/conversation" samples/jfk.wav --runs "$RUNS" \
    --time-limit 15m
}
./target/release/conversation-latency "ws://127.0.0.1:$port/ws/conversation" samples/jfk.wav --runs "$RUNS"
hands_free
if [ "$LOAD" -gt 0 ]; then
  echo "== hands-free beside $LOAD busy-looping process(es)"
  start_load "$LOAD"
  hands_free
  stop_load
fi
