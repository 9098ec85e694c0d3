#!/usr/bin/env bash
# install-layout.sh - lay out Hearth's production install under a root directory:
#
#   ROOT/opt/hearth/bin/hearth                      target/release/hearth (debug info stripped)
#   ROOT/opt/hearth/lib/libhearth_<plugin>.so       the four engine plugins (plugin_dir)
#   ROOT/opt/hearth/models/onnxruntime/libonnxruntime.so.1.32.0      [tts]
#   ROOT/opt/hearth/models/piper/en_US-joe-medium.onnx{,.json}       [tts]
#   ROOT/opt/hearth/models/whisper/ggml-tiny.en-q8_0.bin             [stt]
#   ROOT/opt/hearth/models/vad/silero_vad.onnx                       [vad]
#   ROOT/opt/hearth/models/llama/bin/llama-server                    [chat]
#   ROOT/opt/hearth/models/llama/SmolLM2-135M-Instruct.Q4_1.gguf     [chat]
#   ROOT/usr/local/bin/hearth -> /opt/hearth/bin/hearth
#   ROOT/etc/hearth/plugins.toml                    deploy/plugins.toml (never overwritten once there)
#   ROOT/etc/systemd/system/hearth.service          with --unit
#
# from the release build (target/release) and the model cache of scripts/fetch-models.sh.
# Used as `sudo deploy/install-layout.sh --unit` for a systemd install, and by
# deploy/build-image.sh to stage the container image's build context.
set -euo pipefail
umask 022   # the layout is read by an unprivileged service user

usage() {
  cat <<'EOF'
Usage: deploy/install-layout.sh [--root DIR] [--unit] [--link] [--force-config]

Copies the release build and the models into DIR/opt/hearth and the production config into
DIR/etc/hearth/plugins.toml (the layout deploy/plugins.toml names). Re-runs replace the
binaries and models and keep an existing plugins.toml.

  --root DIR       install under DIR instead of / (e.g. a staging or image-context directory)
  --unit           also install deploy/systemd/hearth.service into DIR/etc/systemd/system
  --link           hard-link the models instead of copying them (same filesystem only;
                   falls back to a copy)
  --force-config   replace an existing DIR/etc/hearth/plugins.toml
  -h, --help       show this help

Needs: `cargo build --release --workspace` (GGML_NATIVE=OFF) and scripts/fetch-models.sh first.
Environment: HEARTH_CACHE (model cache root, default ~/.cache/hearth), CARGO_TARGET_DIR.
EOF
}

ROOT_DIR=/
UNIT=0
LINK=0
FORCE_CONFIG=0
while [ $# -gt 0 ]; do
  case "$1" in
    --root) [ $# -ge 2 ] || { echo "install-layout: --root needs a directory" >&2; exit 2; }; ROOT_DIR=$2; shift 2;;
    --root=*) ROOT_DIR=${1#--root=}; shift;;
    --unit) UNIT=1; shift;;
    --link) LINK=1; shift;;
    --force-config) FORCE_CONFIG=1; shift;;
    -h|--help) usage; exit 0;;
    *) echo "install-layout: unknown argument '$1' (see --help)" >&2; exit 2;;
  esac
done

die() { echo "install-layout: error: $*" >&2; exit 1; }
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$REPO/target}/release
CACHE=${HEARTH_CACHE:-$HOME/.cache/hearth}
MODELS=$CACHE/models
mkdir -p "$ROOT_DIR"
ROOT_DIR=$(cd "$ROOT_DIR" && pwd)
PREFIX=$ROOT_DIR/opt/hearth

PLUGINS=(tts_piper stt_whisper chat_http vad_silero)   # the plugins deploy/plugins.toml names
MODEL_FILES=(
  onnxruntime/libonnxruntime.so.1.32.0
  piper/en_US-joe-medium.onnx
  piper/en_US-joe-medium.onnx.json
  whisper/ggml-tiny.en-q8_0.bin
  vad/silero_vad.onnx
  llama/bin/llama-server
  llama/SmolLM2-135M-Instruct.Q4_1.gguf
)

# Everything must be there before anything is written.
[ -x "$TARGET/hearth" ] || die "$TARGET/hearth is missing: run 'GGML_NATIVE=OFF cargo build --release --workspace'"
for p in "${PLUGINS[@]}"; do
  [ -f "$TARGET/libhearth_$p.so" ] \
    || die "$TARGET/libhearth_$p.so is missing: run 'GGML_NATIVE=OFF cargo build --release --workspace'"
done
for m in "${MODEL_FILES[@]}"; do
  [ -f "$MODELS/$m" ] || die "$MODELS/$m is missing: run scripts/fetch-models.sh"
done

# put SRC DEST MODE: write DEST atomically (a running hearth keeps its open files).
put() {
  local src=$1 dest=$2 mode=$3
  mkdir -p "$(dirname "$dest")"
  rm -f "$dest.part"
  cp -L "$src" "$dest.part"
  chmod "$mode" "$dest.part"
  mv -f "$dest.part" "$dest"
}
# put_binary SRC DEST: like put, without debug info (about half the size; symbols stay).
put_binary() {
  local src=$1 dest=$2
  mkdir -p "$(dirname "$dest")"
  rm -f "$dest.part"
  if command -v strip >/dev/null 2>&1; then
    strip --strip-debug -o "$dest.part" "$src"
  else
    cp -L "$src" "$dest.part"
  fi
  chmod 755 "$dest.part"
  mv -f "$dest.part" "$dest"
}
# put_model SRC DEST: a hard link when asked and possible, else a copy. A link shares the
# cache file's inode, so it is only made when that file is already readable by everyone
# (the cache's modes are never changed: fetch-models.sh keys its checksum stamps on them).
put_model() {
  local src dest=$2 mode=644
  src=$(readlink -f "$1")
  [ -x "$src" ] && mode=755
  if [ "$LINK" = 1 ] && [ -n "$(find "$src" -perm -"${mode/7/5}" -print -quit)" ]; then
    mkdir -p "$(dirname "$dest")"
    rm -f "$dest"
    ln "$src" "$dest" 2>/dev/null && return 0
  fi
  put "$src" "$dest" "$mode"
}

START=$(date +%s)
put_binary "$TARGET/hearth" "$PREFIX/bin/hearth"
for p in "${PLUGINS[@]}"; do
  put_binary "$TARGET/libhearth_$p.so" "$PREFIX/lib/libhearth_$p.so"
  chmod 644 "$PREFIX/lib/libhearth_$p.so"
done
for m in "${MODEL_FILES[@]}"; do
  put_model "$MODELS/$m" "$PREFIX/models/$m"
done
put "$REPO/README.md" "$PREFIX/README.md" 644   # the unit's Documentation=, with docs/operations.md
for doc in "$REPO"/docs/*.md; do                 # the reference the README links to
  put "$doc" "$PREFIX/docs/${doc##*/}" 644
done
mkdir -p "$ROOT_DIR/usr/local/bin"
ln -sfn /opt/hearth/bin/hearth "$ROOT_DIR/usr/local/bin/hearth"
find "$PREFIX" -type d -exec chmod 755 {} +

CONFIG=$ROOT_DIR/etc/hearth/plugins.toml
if [ -e "$CONFIG" ] && [ "$FORCE_CONFIG" = 0 ]; then
  echo "install-layout: kept $CONFIG (compare it with deploy/plugins.toml; --force-config replaces it)"
else
  put "$REPO/deploy/plugins.toml" "$CONFIG" 644
fi
if [ "$UNIT" = 1 ]; then
  put "$REPO/deploy/systemd/hearth.service" "$ROOT_DIR/etc/systemd/system/hearth.service" 644
fi
echo "install-layout: $PREFIX ($(du -sh "$PREFIX" | cut -f1)), $CONFIG$([ "$UNIT" = 1 ] && echo ", $ROOT_DIR/etc/systemd/system/hearth.service") in $(( $(date +%s) - START ))s"
