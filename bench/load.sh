# bench/load.sh - the background load of the benchmarks' "load" condition.
# Sourced by bench/tts.sh and bench/stt.sh, not run.
#
#   start_load N   starts N busy-looping processes (one busy core each; each
#                  ends by itself after an hour at most) and lets them settle
#   stop_load      stops and reaps them; callers also call it from their
#                  EXIT trap, so no loop outlives the benchmark
LOAD_PIDS=()
start_load() {
  local _
  for _ in $(seq 1 "$1"); do
    timeout 3600 sh -c 'while :; do :; done' &
    LOAD_PIDS+=($!)
  done
  sleep 1
}
stop_load() {
  local pid
  for pid in "${LOAD_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${LOAD_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  LOAD_PIDS=()
}
