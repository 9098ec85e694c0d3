#!/usr/bin/env bash
# Runs the browser tests: installs playwright-core from npm (pinned by
# package-lock.json) and drives Debian's /usr/bin/chromium.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
if [ ! -x /usr/bin/chromium ]; then
  echo "browser tests: /usr/bin/chromium is missing; run scripts/install-deps.sh" >&2
  exit 1
fi
npm ci --no-audit --no-fund --silent
node --test --test-concurrency=1 "$@"
