#!/usr/bin/env bash
# Installs the Debian packages Hearth needs to build and test, if missing.
# Idempotent: does nothing (and needs no network) when all are present.
set -euo pipefail

packages=(
  build-essential pkg-config   # C toolchain for -sys crates
  cmake libclang-dev clang     # whisper-rs builds whisper.cpp with cmake and bindgen
  espeak-ng libespeak-ng-dev   # phonemes for the Piper voice
  python3-venv                 # model tools venv (when the system python is used)
  wrk                          # HTTP benchmark
  chromium chromium-driver     # the browser tests of the web page
  sox                          # audio checks in benchmarks
  systemd                      # systemd-analyze verify of deploy/systemd/hearth.service
  prometheus                   # promtool: checks deploy/prometheus (the server is not run, see below)
  buildah mmdebstrap           # the container image: deploy/build-image.sh, scripts/check-deploy.sh
  ffmpeg python3-soundfile     # audio/ tests: independent decoders and encoders to check hearth-audio against
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages: all present"
  exit 0
fi
echo "system packages: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Only promtool is wanted from the prometheus package: on a machine run by systemd, stop and
# disable the server its installation starts.
if [[ " ${missing[*]} " == *" prometheus "* ]] && [ -d /run/systemd/system ]; then
  $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
echo "system packages: installed"
