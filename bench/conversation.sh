#!/usr/bin/env bash
# Conversation latency on the real default engines (README "Benchmarks"):
# speaks samples/jfk.wav into /ws/conversation RUNS times and compares the
# time to first audio with the sum of its parts. Usage: bench/conversation.sh [RUNS]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RUNS=${1:-5}
export GGML_NATIVE=OFF
./scripts/fetch-models.sh >/dev/null
cargo build --release -q --workspace
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
HEARTH_LOG=warn ./target/release/hearth serve --config plugins.toml --listen "127.0.0.1:$port" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT
for _ in $(seq 600); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.2; done
curl -sf "http://127.0.0.1:$port/readyz" >/dev/null || { echo "Hearth did not become ready" >&2; exit 1; }
./target/release/conversation-latency "ws://127.0.0.1:$port/ws/conversation" samples/jfk.wav "$RUNS"
