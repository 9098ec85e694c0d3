#!/usr/bin/env bash
# Runs Hearth with the real default engines from a fresh Debian machine:
# installs the system packages, fetches the models, builds in release mode
# and serves plugins.toml on http://127.0.0.1:8000. Idempotent. Extra
# arguments go to `hearth serve` (e.g. --listen 0.0.0.0:8000).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export GGML_NATIVE=OFF
./scripts/install-deps.sh
./scripts/fetch-models.sh
cargo build --release --workspace
exec ./target/release/hearth serve --config plugins.toml "$@"
