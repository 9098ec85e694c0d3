#!/usr/bin/env bash
# Readiness API benchmarks (docs/benchmarks.md):
#  1. /api/ready requests/s as a ratio to /livez, same server, same run
#     (wrk, alternating, median of RUNS runs each). Target >= 0.9.
#  2. SSE fan-out: SUBSCRIBERS clients on /api/ready/stream?follow=true, one
#     transition, time until the last one has it (target < 200 ms) and the
#     server's memory per subscriber (target < 30 KB); median of RUNS runs.
# Usage: bench/readiness.sh [RUNS] [SUBSCRIBERS]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RUNS=${1:-5}
SUBSCRIBERS=${2:-10000}
DURATION=${DURATION:-5s}

command -v wrk >/dev/null || ./scripts/install-deps.sh
cargo build --release -q -p hearth -p hearth-bench -p hearth-scripted-tts -p hearth-scripted-chat
ulimit -n "$(ulimit -Hn)"  # 10,000 sockets on each side

work=$(mktemp -d)
server_pid=""
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$work/plugins.toml" <<TOML
[host]
listen = "127.0.0.1:$port"
plugin_dir = "$PWD/target/release"
[tts]
plugin = "scripted-tts"
[chat]
plugin = "scripted-chat"
TOML
start_server() {
  HEARTH_LOG=warn ./target/release/hearth serve -c "$work/plugins.toml" &
  server_pid=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/api/ready" >/dev/null && return; sleep 0.1; done
  echo "hearth did not become ready" >&2; exit 1
}
stop_server() { kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""; }
start_server

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
rps() { wrk -t1 -c32 -d"$DURATION" "http://127.0.0.1:$port$1" | awk '/Requests\/sec/ {print $2}'; }

echo "== /api/ready vs /livez (wrk -t1 -c32 -d$DURATION, $RUNS runs each, alternating, after a warm-up run)"
rps /livez >/dev/null
: > "$work/livez"; : > "$work/ready"
for i in $(seq "$RUNS"); do
  rps /livez >> "$work/livez"
  rps /api/ready >> "$work/ready"
done
livez=$(median < "$work/livez"); ready=$(median < "$work/ready")
printf '  /livez      median %10.0f req/s   runs: %s\n' "$livez" "$(tr '\n' ' ' < "$work/livez")"
printf '  /api/ready  median %10.0f req/s   runs: %s\n' "$ready" "$(tr '\n' ' ' < "$work/ready")"
awk -v r="$ready" -v l="$livez" 'BEGIN {printf "  ratio /api/ready : /livez = %.3f (target >= 0.9)\n", r/l}'

stop_server

echo "== SSE fan-out: $SUBSCRIBERS subscribers, one transition ($RUNS runs, a fresh server each)"
: > "$work/fanout"; : > "$work/mem"
for i in $(seq "$RUNS"); do
  start_server
  out=$(./target/release/sse-fanout "127.0.0.1:$port" "$server_pid" "$SUBSCRIBERS")
  stop_server
  echo "  $out"
  python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["fanout_ms"])' "$out" >> "$work/fanout"
  python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["per_subscriber_kib"])' "$out" >> "$work/mem"
done
printf '  fan-out median %.1f ms (target < 200 ms)\n' "$(median < "$work/fanout")"
printf '  memory per subscriber median %.1f KiB (target < 30 KB)\n' "$(median < "$work/mem")"
