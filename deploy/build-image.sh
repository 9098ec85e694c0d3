#!/usr/bin/env bash
# build-image.sh - build Hearth's container image with buildah, from package registries only.
#
#   1. a minimal Debian 12 base made by mmdebstrap from this machine's apt mirror, imported
#      into buildah as localhost/hearth-base:bookworm; the tarball is cached under
#      ${HEARTH_CACHE:-~/.cache/hearth}/image/, so later runs skip this step;
#   2. the release build (cargo, incremental) and a build context in a temporary directory:
#      deploy/install-layout.sh lays out /opt/hearth (binaries, plugins, models hard-linked
#      from the model cache; nothing is copied into the repository) and /etc/hearth;
#   3. `buildah bud --isolation chroot` of deploy/Containerfile, tagged localhost/hearth:latest.
#
# Idempotent: when the base, the Containerfile and every staged file are unchanged, the
# existing image is kept. A rebuilt image replaces the previous one (which is removed), so
# images do not pile up.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: deploy/build-image.sh [--tag NAME] [--no-cargo] [--force] [--rebuild-base] [--keep-context DIR]

Builds Hearth's container image (Debian 12, the three engines and their models) with buildah:
an mmdebstrap-made base (cached), the release build staged into a temporary build context,
and `buildah bud --isolation chroot -f deploy/Containerfile`.

  --tag NAME          image name (default: localhost/hearth:latest)
  --no-cargo          do not run `cargo build --release --workspace` first (use target/release as is)
  --force             build even when nothing changed since the image was built
  --rebuild-base      make the Debian base again (e.g. for security updates)
  --keep-context DIR  stage the build context in DIR and keep it (default: a temporary directory)
  -h, --help          show this help

Needs (Debian packages): buildah, mmdebstrap (only to make the base), binutils (strip); a
Rust toolchain; the models of scripts/fetch-models.sh. Runs as root (buildah's storage).
Environment: HEARTH_CACHE (cache root), HEARTH_DEBIAN_MIRROR and HEARTH_DEBIAN_SECURITY_MIRROR
(default: the mirror /etc/apt/sources.list* names, else deb.debian.org).

Run the result elsewhere with podman or docker (it needs an admin token to listen on 0.0.0.0):
  buildah push localhost/hearth:latest docker-archive:hearth.tar:hearth:latest
  docker load -i hearth.tar && docker run -p 8000:8000 -e HEARTH_ADMIN_TOKEN=$(openssl rand -hex 32) hearth:latest
EOF
}

TAG=localhost/hearth:latest
BASE_TAG=localhost/hearth-base:bookworm
CARGO=1
FORCE=0
REBUILD_BASE=0
KEEP_CONTEXT=
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) [ $# -ge 2 ] || { echo "build-image: --tag needs a name" >&2; exit 2; }; TAG=$2; shift 2;;
    --tag=*) TAG=${1#--tag=}; shift;;
    --no-cargo) CARGO=0; shift;;
    --force) FORCE=1; shift;;
    --rebuild-base) REBUILD_BASE=1; shift;;
    --keep-context) [ $# -ge 2 ] || { echo "build-image: --keep-context needs a directory" >&2; exit 2; }
                    KEEP_CONTEXT=$2; shift 2;;
    -h|--help) usage; exit 0;;
    *) echo "build-image: unknown argument '$1' (see --help)" >&2; exit 2;;
  esac
done

die() { echo "build-image: error: $*" >&2; exit 1; }
say() { echo "build-image: $*"; }
need_tool() { command -v "$1" >/dev/null 2>&1 || die "'$1' not found: install it ($2) and re-run"; }

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${HEARTH_CACHE:-$HOME/.cache/hearth}
IMG_CACHE=$CACHE/image
mkdir -p "$IMG_CACHE"
need_tool buildah "apt-get install buildah"
[ "$(id -u)" = 0 ] || die "run as root: buildah's storage (/var/lib/containers) and mmdebstrap --mode=root need it"

# One build at a time per cache.
exec 7>"$IMG_CACHE/.lock"
flock 7
START=$(date +%s)

image_label() { # image_label IMAGE LABEL: the label's value, empty when the image or label is missing
  buildah inspect --type image --format "{{index .OCIv1.Config.Labels \"$2\"}}" "$1" 2>/dev/null || true
}
image_id() { buildah inspect --type image --format '{{.FromImageID}}' "$1" 2>/dev/null || true; }

# ---- 1. the Debian 12 base ---------------------------------------------------------------------
# The mirror this machine's apt uses (deb822 .sources or one-line sources.list), for bookworm.
detect_mirror() { # detect_mirror security|main
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    awk -v want="$1" '
      /^[[:space:]]*#/ { next }
      /^deb[[:space:]]/ { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { u = $i; s = $(i + 1); break }
                          if (s ~ /^bookworm/) found(u, s); next }
      /^URIs:/   { u = $2 } /^Suites:/ { s = $0 }
      /^[[:space:]]*$/ { if (u != "" && s ~ /bookworm/) found(u, s); u = ""; s = "" }
      END { if (u != "" && s ~ /bookworm/) found(u, s) }
      function found(u, s) { sec = (s ~ /security/ || u ~ /security/)
        if ((want == "security") == sec && !done) { print u; done = 1 } }
    ' "$f"
  done | head -n1
}
MIRROR=${HEARTH_DEBIAN_MIRROR:-$(detect_mirror main)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${HEARTH_DEBIAN_SECURITY_MIRROR:-$(detect_mirror security)}
SECURITY_MIRROR=${SECURITY_MIRROR:-http://deb.debian.org/debian-security}
# What the Containerfile's runtime stage needs, so that building the image needs no network.
BASE_PACKAGES=ca-certificates,curl,libespeak-ng1,espeak-ng-data,libgomp1,libstdc++6,tini
MMDEBSTRAP_ARGS=(
  --variant=apt --mode=root --format=tar
  --include="$BASE_PACKAGES"
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*'
  --dpkgopt='path-exclude=/usr/share/info/*' --dpkgopt='path-exclude=/usr/share/locale/*'
  --dpkgopt='path-include=/usr/share/locale/locale.alias'
  --aptopt='Acquire::Retries "3"'
)
SOURCES=(
  "deb $MIRROR bookworm main"
  "deb $MIRROR bookworm-updates main"
  "deb $SECURITY_MIRROR bookworm-security main"
)
BASE_STAMP=$(printf '%s\n' v1 "${MMDEBSTRAP_ARGS[@]}" "${SOURCES[@]}" | sha256sum | cut -c1-16)
BASE_TAR=$IMG_CACHE/debian12-base-$BASE_STAMP.tar

if [ "$REBUILD_BASE" = 0 ] && [ "$(image_label "$BASE_TAG" hearth.base)" = "$BASE_STAMP" ]; then
  say "base      $BASE_TAG is up to date"
else
  if [ "$REBUILD_BASE" = 1 ] || [ ! -s "$BASE_TAR" ]; then
    need_tool mmdebstrap "apt-get install mmdebstrap"
    say "base      making Debian 12 with mmdebstrap from $MIRROR (about 1-2 minutes; log: $IMG_CACHE/mmdebstrap.log)"
    rm -f "$BASE_TAR.part"
    timeout 1200 mmdebstrap "${MMDEBSTRAP_ARGS[@]}" bookworm "$BASE_TAR.part" "${SOURCES[@]}" \
      </dev/null >"$IMG_CACHE/mmdebstrap.log" 2>&1 \
      || { tail -n 20 "$IMG_CACHE/mmdebstrap.log" >&2; rm -f "$BASE_TAR.part"; die "mmdebstrap failed (log tail above)"; }
    mv -f "$BASE_TAR.part" "$BASE_TAR"
  fi
  # Older bases are not needed any more.
  find "$IMG_CACHE" -maxdepth 1 -name 'debian12-base-*.tar' ! -name "$(basename "$BASE_TAR")" -delete
  say "base      importing $(basename "$BASE_TAR") as $BASE_TAG"
  old_base=$(image_id "$BASE_TAG")
  ctr=$(buildah from --quiet scratch)
  { buildah add --quiet "$ctr" "$BASE_TAR" / >/dev/null \
    && buildah config --label hearth.base="$BASE_STAMP" \
         --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --cmd /bin/bash "$ctr" \
    && buildah commit --quiet --rm "$ctr" "$BASE_TAG" >/dev/null; } \
    || { buildah rm "$ctr" >/dev/null 2>&1 || true; die "importing the base into buildah failed"; }
  new_base=$(image_id "$BASE_TAG")
  if [ -n "$old_base" ] && [ "$old_base" != "$new_base" ]; then buildah rmi "$old_base" >/dev/null 2>&1 || true; fi
fi

# ---- 2. the release build and the build context --------------------------------------------------
if [ "$CARGO" = 1 ]; then
  need_tool cargo "rustup"
  say "cargo     cargo build --release --workspace (GGML_NATIVE=OFF; incremental)"
  (cd "$REPO" && GGML_NATIVE=OFF cargo build --release --workspace --quiet) || die "cargo build --release failed"
fi
if [ -n "$KEEP_CONTEXT" ]; then
  CTX=$KEEP_CONTEXT
  rm -rf "$CTX/rootfs"
  mkdir -p "$CTX"
else
  CTX=$(mktemp -d "${TMPDIR:-/tmp}/hearth-image.XXXXXX")
  trap 'rm -rf "$CTX"' EXIT
fi
say "context   staging in $CTX"
"$REPO/deploy/install-layout.sh" --root "$CTX/rootfs" --link --force-config >/dev/null
cp "$REPO/deploy/Containerfile" "$CTX/Containerfile"

# The inputs: the base, the Containerfile and every staged file.
INPUTS=$( { image_id "$BASE_TAG"; sha256sum "$CTX/Containerfile" | cut -d' ' -f1;
            cd "$CTX/rootfs" && find . -type f -print0 | sort -z | xargs -0 sha256sum --;
            find . -type l -printf '%p -> %l\n' | sort; } | sha256sum | cut -c1-16)
if [ "$FORCE" = 0 ] && [ "$(image_label "$TAG" hearth.inputs)" = "$INPUTS" ]; then
  say "image     $TAG is up to date ($(image_id "$TAG" | cut -c1-12)); --force rebuilds it"
  exit 0
fi

# ---- 3. the image ----------------------------------------------------------------------------------
old_image=$(image_id "$TAG")
say "image     buildah bud --isolation chroot -t $TAG (log: $IMG_CACHE/build.log)"
T0=$(date +%s)
timeout 1800 buildah bud --isolation chroot --format docker --layers=false \
  --build-arg BASE="$BASE_TAG" --label hearth.inputs="$INPUTS" \
  -t "$TAG" -f "$CTX/Containerfile" "$CTX" </dev/null >"$IMG_CACHE/build.log" 2>&1 \
  || { tail -n 30 "$IMG_CACHE/build.log" >&2; die "buildah bud failed (log tail above; whole log: $IMG_CACHE/build.log)"; }
new_image=$(image_id "$TAG")
if [ -n "$old_image" ] && [ "$old_image" != "$new_image" ]; then
  buildah rmi "$old_image" >/dev/null 2>&1 && say "image     removed the previous image ${old_image:0:12}" || true
fi
SIZE=$(buildah images --format '{{.Size}}' --filter "id=$new_image" 2>/dev/null | head -n1)
say "image     built $TAG (${new_image:0:12}, ${SIZE:-?}) in $(( $(date +%s) - T0 ))s; done in $(( $(date +%s) - START ))s"
