#!/usr/bin/env bash
# reload.sh - what a live swap costs clients: `hearth serve` with the scripted fixture engines,
# alternating steady phases and phases that swap the TTS engine reload after reload, while one
# client polls /api/ready and another runs conversation turns. Prints median and p99 of both per
# phase, failures (target: none) and the p99 ratio of /api/ready (target <= 1.5). Release build;
# ends by itself (--timeout per step, --time-limit).
#
# Usage: bench/reload.sh [--runs N] [--phase 4s] [--load 300ms] [more: target/release/reload-bench --help]
# Environment: CARGO_TARGET_DIR (default <repo>/target).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
echo "reload.sh: building hearth, the scripted plugins and the bench driver (release)" >&2
(cd "$ROOT" && cargo build --release -q -p hearth -p hearth-scripted-tts -p hearth-scripted-stt \
  -p hearth-scripted-chat -p hearth-bench --lib --bin hearth --bin reload-bench)
exec "$TARGET/release/reload-bench" --hearth "$TARGET/release/hearth" --plugin-dir "$TARGET/release" "$@"
