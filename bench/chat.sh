#!/usr/bin/env bash
# chat.sh - chat latency through the chat-http plugin versus a direct HTTP client.
#
# Starts one llama-server (models/llama, from scripts/fetch-models.sh) on a free loopback port,
# then alternates streamed chat requests made directly with reqwest and made through the plugin
# (the release cdylib, loaded by the host's loader as `hearth serve` does), and prints time to
# first token and tokens/s per run, medians and the plugin's overhead (target: <= 5% of TTFT).
#
# Usage: bench/chat.sh [--runs N] [--max-tokens N] [--threads N] [more: target/release/chat-bench --help]
# Environment: CARGO_TARGET_DIR (default <repo>/target).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
SERVER=$ROOT/models/llama/bin/llama-server
MODEL=$ROOT/models/llama/SmolLM2-135M-Instruct.Q4_1.gguf
for f in "$SERVER" "$MODEL"; do
  [ -e "$f" ] || { echo "chat.sh: $f is missing: run scripts/fetch-models.sh" >&2; exit 1; }
done

echo "chat.sh: building the plugin and the bench driver (release)" >&2
(cd "$ROOT" && cargo build --release -q -p hearth-chat-http --lib -p hearth-bench --bin chat-bench)

exec "$TARGET/release/chat-bench" \
  --plugin "$TARGET/release/libhearth_chat_http.so" --server "$SERVER" --model "$MODEL" "$@"
