#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine: installs the system
# packages, fetches the models, builds the workspace once, runs every test
# (Rust, the model converter's, the browser's). Idempotent; reruns are fast.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export GGML_NATIVE=OFF          # portable whisper.cpp build (no -march=native)
export CARGO_TERM_COLOR=never
CACHE=${HEARTH_CACHE:-$HOME/.cache/hearth}

# Each step says how long the one before it took, so a slow step shows.
STARTED=$SECONDS
LAST=$SECONDS
step() {
  printf '\n== %s (previous step: %d s; %d s so far)\n' "$*" $((SECONDS - LAST)) $((SECONDS - STARTED))
  LAST=$SECONDS
}

step "system packages"
./scripts/install-deps.sh
step "models"
./scripts/fetch-models.sh
step "build (debug, whole workspace: the tests load the plugin libraries from target/debug)"
cargo build --workspace --all-targets
step "Rust tests"
cargo test --workspace --no-fail-fast
step "model converter tests"
"$CACHE/venv-tools/bin/python" -m pytest -q tests/converter
step "OpenAI-compatible /v1 through the official openai SDK (scripted engines, then the real ones)"
"$CACHE/venv-tools/bin/python" -m pytest -q tests/openai
step "Wyoming protocol through the wyoming package's client (real engines, then scripted ones)"
"$CACHE/venv-tools/bin/python" -m pytest -q tests/wyoming
step "OpenAPI document and schemathesis against a live server"
./scripts/check-openapi.sh
if [ -f tests/browser/package.json ]; then
  step "browser tests"
  ./tests/browser/run.sh
fi
step "deployment (systemd unit, Kubernetes manifests, Prometheus rules, container image: scripts/check-deploy.sh)"
./scripts/check-deploy.sh
printf '\n== all tests passed in %d s (last step: %d s)\n' $((SECONDS - STARTED)) $((SECONDS - LAST))
