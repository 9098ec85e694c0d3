#!/usr/bin/env bash
# check-deploy.sh - checks everything under deploy/ for real (run by scripts/test.sh):
#
#   systemd     `systemd-analyze verify` of deploy/systemd/hearth.service (on a copy whose
#               ExecStart names the release binary, as /opt/hearth is not installed here) and
#               `systemd-analyze security` (exposure must stay at or below 2.0)
#   kubernetes  `kubernetes-validate --strict` of deploy/kubernetes/*.yaml for Kubernetes 1.37
#               (the newest the package knows) and 1.31; kustomization.yaml lists every
#               manifest; the ConfigMap's plugins.toml matches deploy/plugins.toml but for
#               [host] listen and allowed_hosts
#   prometheus  `promtool check config`, `promtool check rules`, `promtool test rules`
#   image       (when buildah is installed) the release build, deploy/build-image.sh, then in the
#               image (buildah mount, read-only, chroot as its user with its environment):
#               `hearth check` of the image's config and of the ConfigMap's, `hearth serve`
#               through the image's entrypoint on a loopback port (under the kernel's
#               write-xor-execute, as MemoryDenyWriteExecute=yes) until /readyz answers 200
#               to the host, Host/admin-token checks, /metrics has the alerts' and the
#               HPA's metrics, SIGTERM and a clean exit
#
# Bounded in time (every wait has a timeout); cleans up (mounts, processes, the working
# container) on exit. Exit 0 when every check passed, 1 otherwise.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/check-deploy.sh [--skip-image] [--no-cargo] [--keep]

Checks deploy/: the systemd unit, the Kubernetes manifests, the Prometheus config and rules,
and (when buildah is installed) builds the container image and serves from inside it.

  --skip-image   skip the container image build and test
  --no-cargo     do not run `cargo build --release --workspace` first (use target/release as is)
  --keep         keep the working container and its mounts' directory for debugging
                 (the server is still stopped)
  -h, --help     show this help

Needs: systemd (systemd-analyze), prometheus (promtool), buildah and mmdebstrap (image),
curl, python3; kubernetes-validate is installed into ${HEARTH_CACHE:-~/.cache/hearth}/venv-tools.
EOF
}

SKIP_IMAGE=0
CARGO=1
KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --skip-image) SKIP_IMAGE=1; shift;;
    --no-cargo) CARGO=0; shift;;
    --keep) KEEP=1; shift;;
    -h|--help) usage; exit 0;;
    *) echo "check-deploy: unknown argument '$1' (see --help)" >&2; exit 2;;
  esac
done

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$(pwd)
CACHE=${HEARTH_CACHE:-$HOME/.cache/hearth}
VENV=$CACHE/venv-tools
KUBERNETES_VALIDATE_VERSION=1.37.0
K8S_VERSIONS=(1.37.0 1.31.0)
IMAGE=localhost/hearth:latest
WORKING_CONTAINER=hearth-check-deploy
PASSED=0
FAILED=0
SECONDS_TOTAL=$(date +%s)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/hearth-check-deploy.XXXXXX")
CTR=
RUN_ROOT=
SERVER_PID=
MOUNTS=()   # mounted by this script, unmounted in reverse order

cleanup() {
  local rc=$? i p
  trap '' INT TERM
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true   # a clean stop first, as on success
    for i in $(seq 1 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
  fi
  # Whatever still runs inside the image's root (hearth, a worker, llama-server) was started here.
  if [ -n "$RUN_ROOT" ]; then
    for p in /proc/[0-9]*; do
      [ "$(readlink "$p/root" 2>/dev/null)" = "$RUN_ROOT" ] && kill -KILL "${p#/proc/}" 2>/dev/null || true
    done
    sleep 0.2
  fi
  for (( i=${#MOUNTS[@]}-1; i>=0; i-- )); do
    umount "${MOUNTS[i]}" 2>/dev/null || umount -l "${MOUNTS[i]}" 2>/dev/null || true
  done
  if [ -n "$CTR" ] && [ "$KEEP" = 0 ]; then
    timeout 60 buildah umount "$CTR" >/dev/null 2>&1 || true
    timeout 60 buildah rm "$CTR" >/dev/null 2>&1 || true
  fi
  if [ "$KEEP" = 0 ]; then rm -rf "$WORK"; else echo "check-deploy: kept $WORK and container $CTR"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { printf '\n-- %s\n' "$*"; STEP_START=$(date +%s); }
ok() { echo "   ok: $* ($(( $(date +%s) - STEP_START ))s)"; PASSED=$((PASSED + 1)); }
fail() { echo "   FAILED: $*" >&2; FAILED=$((FAILED + 1)); }
skip() { echo "   skipped: $*"; }
die() { echo "check-deploy: error: $*" >&2; exit 1; }
# python3 -c "$MDWE_EXEC" CMD...: run CMD with PR_SET_MDWE(PR_MDWE_REFUSE_EXEC_GAIN); fails
# when the kernel (before 6.3) does not have it.
MDWE_EXEC='import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:
    sys.exit("PR_SET_MDWE: " + os.strerror(ctypes.get_errno()))
os.execvp(sys.argv[1], sys.argv[1:])'
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# ---- release build (the unit's ExecStart and the image need it; incremental) ---------------------
step "release build (cargo build --release --workspace; incremental)"
if [ "$CARGO" = 1 ]; then
  GGML_NATIVE=OFF timeout 3600 cargo build --release --workspace --quiet || die "cargo build --release --workspace failed"
  ok "target/release/hearth and the plugins are up to date"
else
  [ -x target/release/hearth ] || die "target/release/hearth is missing: run without --no-cargo"
  skip "--no-cargo: using target/release as it is"
fi

# ---- systemd -----------------------------------------------------------------------------------------
step "systemd: systemd-analyze verify deploy/systemd/hearth.service"
if command -v systemd-analyze >/dev/null 2>&1; then
  # verify insists that ExecStart's binary exists; /opt/hearth is not installed on a build
  # machine, so a copy of the unit (same name) points at the release binary instead.
  mkdir -p "$WORK/systemd"
  sed "s|/opt/hearth/bin/hearth|$REPO/target/release/hearth|g" deploy/systemd/hearth.service >"$WORK/systemd/hearth.service"
  if out=$(cd "$WORK/systemd" && timeout 60 systemd-analyze verify ./hearth.service 2>&1) && [ -z "$out" ]; then
    ok "verify: no complaints"
  else
    fail "systemd-analyze verify: ${out:-exit status $?}"
  fi
  step "systemd: systemd-analyze security (exposure <= 2.0)"
  if out=$(timeout 60 systemd-analyze security --offline=yes --threshold=20 "$WORK/systemd/hearth.service" 2>&1); then
    ok "$(echo "$out" | grep -o 'Overall exposure level.*' | head -n1)"
  else
    echo "$out" | grep '✗' >&2 || true
    fail "systemd-analyze security: $(echo "$out" | grep -o 'Overall exposure level.*' | head -n1)"
  fi
else
  fail "systemd-analyze not found (apt-get install systemd)"
fi

# ---- Kubernetes ----------------------------------------------------------------------------------
step "kubernetes: kubernetes-validate --strict (Kubernetes ${K8S_VERSIONS[*]})"
if ! "$VENV/bin/python" -c 'import kubernetes_validate, yaml' 2>/dev/null \
   || [ "$("$VENV/bin/kubernetes-validate" --version 2>/dev/null)" != "$KUBERNETES_VALIDATE_VERSION" ]; then
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV" || die "could not create $VENV (apt-get install python3-venv)"
  timeout 300 "$VENV/bin/python" -m pip install -q "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" >"$WORK/pip.log" 2>&1 \
    || { cat "$WORK/pip.log" >&2; die "pip install kubernetes-validate==$KUBERNETES_VALIDATE_VERSION into $VENV failed"; }
fi
MANIFESTS=()
for f in deploy/kubernetes/*.yaml; do
  [ "$(basename "$f")" = kustomization.yaml ] || MANIFESTS+=("$f")
done
for v in "${K8S_VERSIONS[@]}"; do
  if out=$(timeout 120 "$VENV/bin/kubernetes-validate" --strict --quiet -k "$v" "${MANIFESTS[@]}" 2>&1); then
    ok "${#MANIFESTS[@]} manifests valid for Kubernetes $v"
  else
    fail "kubernetes-validate for $v: $out"
  fi
done
step "kubernetes: kustomization lists every manifest; the ConfigMap matches deploy/plugins.toml"
if out=$(timeout 60 "$VENV/bin/python" - "${MANIFESTS[@]}" <<'EOF' 2>&1
import os, sys, tomllib, yaml
manifests = sorted(os.path.basename(m) for m in sys.argv[1:])
kust = yaml.safe_load(open("deploy/kubernetes/kustomization.yaml"))
listed = sorted(kust.get("resources", []))
if listed != manifests:
    sys.exit(f"kustomization.yaml resources {listed} != the manifests {manifests}")
cm = yaml.safe_load(open("deploy/kubernetes/configmap.yaml"))
pods = tomllib.loads(cm["data"]["plugins.toml"])
base = tomllib.loads(open("deploy/plugins.toml").read())
if pods["host"].get("listen") != "0.0.0.0:8000":
    sys.exit("the ConfigMap's [host] listen must be 0.0.0.0:8000 (the probes and the Service reach the pod IP)")
for name in ("hearth", "hearth.hearth.svc"):
    if name not in pods["host"].get("allowed_hosts", []):
        sys.exit(f"the ConfigMap's [host] allowed_hosts lacks the Service name {name!r}")
for t in (pods, base):
    t["host"].pop("listen", None); t["host"].pop("allowed_hosts", None)
if pods != base:
    diff = {k for k in set(pods) | set(base) if pods.get(k) != base.get(k)}
    sys.exit(f"the ConfigMap's plugins.toml differs from deploy/plugins.toml in {sorted(diff)} (beyond listen/allowed_hosts)")
dep = yaml.safe_load(open("deploy/kubernetes/deployment.yaml"))
spec = dep["spec"]["template"]["spec"]
grace = spec["terminationGracePeriodSeconds"]
c = spec["containers"][0]
pre = int(c["lifecycle"]["preStop"]["exec"]["command"][-1])
shutdown = int(base["host"].get("shutdown_timeout", "10s").rstrip("s"))
if grace <= pre + shutdown + 1:
    sys.exit(f"terminationGracePeriodSeconds {grace} must exceed preStop {pre}s + shutdown_timeout {shutdown}s + 1s")
print(f"{len(listed)} resources listed; ConfigMap in step; grace {grace}s > {pre}+{shutdown}+1s")
EOF
); then ok "$out"; else fail "$out"; fi

# ---- Prometheus ----------------------------------------------------------------------------------
step "prometheus: promtool check rules / test rules / check config"
if command -v promtool >/dev/null 2>&1; then
  if out=$(timeout 60 promtool check rules deploy/prometheus/hearth-alerts.yml 2>&1); then
    ok "check rules: $(echo "$out" | grep -o 'SUCCESS.*' | head -n1)"
  else fail "promtool check rules: $out"; fi
  if out=$(cd deploy/prometheus && timeout 60 promtool test rules hearth-alerts.test.yml 2>&1); then
    ok "test rules: both alerts fire after their 'for', not before, and only for required services"
  else fail "promtool test rules: $out"; fi
  if out=$(timeout 60 promtool check config deploy/prometheus/prometheus.yml 2>&1); then
    ok "check config"
  elif echo "$out" | grep -q 'field kubernetes_sd_configs not found'; then
    # Debian's promtool is built without Kubernetes service discovery. Check the rest of the
    # file (relabelling, rule files) with each kubernetes_sd_configs block swapped for a static
    # target, and the discovery block's own keys here.
    mkdir -p "$WORK/prometheus"
    cp deploy/prometheus/hearth-alerts.yml "$WORK/prometheus/"
    if out2=$("$VENV/bin/python" - "$WORK/prometheus/prometheus.yml" <<'EOF' 2>&1
import sys, yaml
conf = yaml.safe_load(open("deploy/prometheus/prometheus.yml"))
for job in conf["scrape_configs"]:
    sds = job.pop("kubernetes_sd_configs", None)
    if sds is None:
        continue
    for sd in sds:
        unknown = set(sd) - {"role", "namespaces", "selectors", "api_server", "kubeconfig_file", "attach_metadata"}
        if unknown or sd.get("role") not in ("pod", "endpoints", "endpointslice", "service", "node", "ingress"):
            sys.exit(f"job {job['job_name']}: bad kubernetes_sd_configs entry {sd}")
    job["static_configs"] = [{"targets": ["10.0.0.1:8000"]}]
yaml.safe_dump(conf, open(sys.argv[1], "w"))
EOF
) && out2=$(timeout 60 promtool check config "$WORK/prometheus/prometheus.yml" 2>&1); then
      ok "check config (this promtool lacks Kubernetes discovery: the rest checked with a static target)"
    else fail "promtool check config: $out2"; fi
  else fail "promtool check config: $out"; fi
else
  fail "promtool not found (apt-get install prometheus)"
fi

# ---- the container image ---------------------------------------------------------------------------
image_tests() {
  local env_lines=() user workdir entry=() token port chat_port code t0 i rc
  step "image: deploy/build-image.sh (mmdebstrap base cached; buildah bud --isolation chroot)"
  timeout 2400 ./deploy/build-image.sh --no-cargo || { fail "deploy/build-image.sh failed"; return; }
  ok "$IMAGE built or up to date"

  step "image: mount it read-only and run 'hearth check' inside (chroot, as the image's user)"
  # Working containers of earlier runs that were killed before their cleanup.
  local name
  for name in $(buildah containers --format '{{.ContainerName}}' 2>/dev/null | grep "^$WORKING_CONTAINER-" || true); do
    kill -0 "${name##*-}" 2>/dev/null || buildah rm "$name" >/dev/null 2>&1 || true
  done
  CTR=$(timeout 120 buildah from --quiet --name "$WORKING_CONTAINER-$$" "$IMAGE") || { fail "buildah from $IMAGE"; return; }
  local mnt
  mnt=$(timeout 120 buildah mount "$CTR") || { fail "buildah mount"; return; }
  # As a container runtime would: a read-only root (readOnlyRootFilesystem), /proc, /dev, a
  # tmpfs /tmp, the image's user, environment and working directory.
  RUN_ROOT=$WORK/root
  mkdir -p "$RUN_ROOT"
  mount --bind "$mnt" "$RUN_ROOT" && MOUNTS+=("$RUN_ROOT")
  mount -o remount,bind,ro "$RUN_ROOT"
  mount -t proc proc "$RUN_ROOT/proc" && MOUNTS+=("$RUN_ROOT/proc")
  mount --bind /dev "$RUN_ROOT/dev" && MOUNTS+=("$RUN_ROOT/dev")
  mount -t tmpfs -o size=64m,mode=1777 tmpfs "$RUN_ROOT/tmp" && MOUNTS+=("$RUN_ROOT/tmp")
  mapfile -t env_lines < <(buildah inspect --type image --format '{{range .OCIv1.Config.Env}}{{println .}}{{end}}' "$IMAGE" | grep .)
  user=$(buildah inspect --type image --format '{{.OCIv1.Config.User}}' "$IMAGE")
  workdir=$(buildah inspect --type image --format '{{.OCIv1.Config.WorkingDir}}' "$IMAGE")
  mapfile -t entry < <(buildah inspect --type image --format '{{range .OCIv1.Config.Entrypoint}}{{println .}}{{end}}' "$IMAGE" | grep .)
  [ -n "$user" ] && [ "${user%%:*}" != 0 ] && [ "${user%%:*}" != root ] || { fail "the image runs as root ('$user')"; return; }
  in_image() { # in_image SECONDS CMD...: run CMD in the image root as its user, with its environment
    local secs=$1; shift
    timeout "$secs" chroot --userspec="$user" "$RUN_ROOT" /usr/bin/env -i -C "${workdir:-/}" "${env_lines[@]}" "$@"
  }
  if out=$(in_image 120 /opt/hearth/bin/hearth check 2>&1); then
    ok "image config: $(echo "$out" | tail -n1)"
  else
    fail "hearth check of the image's /etc/hearth/plugins.toml: $out"
  fi
  # The ConfigMap's plugins.toml, mounted over the image's as Kubernetes does; llama-server's
  # port is moved to a free one so a Hearth already running on this machine does not collide.
  chat_port=$(free_port)
  "$VENV/bin/python" -c '
import sys, yaml
sys.stdout.write(yaml.safe_load(open("deploy/kubernetes/configmap.yaml"))["data"]["plugins.toml"].replace("8089", sys.argv[1]))
' "$chat_port" >"$WORK/plugins.toml"
  chmod 644 "$WORK/plugins.toml"
  mount --bind "$WORK/plugins.toml" "$RUN_ROOT/etc/hearth/plugins.toml" && MOUNTS+=("$RUN_ROOT/etc/hearth/plugins.toml")
  if out=$(in_image 120 /opt/hearth/bin/hearth check 2>&1); then
    ok "ConfigMap config: $(echo "$out" | tail -n1)"
  else
    fail "hearth check of the ConfigMap's plugins.toml: $out"
  fi

  step "image: serve from inside it (entrypoint ${entry[*]}) until /readyz answers 200 on the host"
  token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
  port=$(free_port)
  t0=$(date +%s%N)
  # The ConfigMap listens on 0.0.0.0; here a loopback port (chroot shares the host's network).
  # Not through in_image: $! must be timeout's pid. --foreground: timeout passes a SIGTERM on
  # to its child alone (tini, which passes it on to hearth), as a runtime signals PID 1 alone;
  # without it the whole process group gets it too, and hearth takes the second as "now".
  # Under the kernel's write-xor-execute (PR_SET_MDWE, inherited by the workers and
  # llama-server) where the kernel has it: what the unit's MemoryDenyWriteExecute=yes enforces.
  local mdwe=() mdwe_note="no PR_SET_MDWE in this kernel"
  if python3 -c "$MDWE_EXEC" true 2>/dev/null; then mdwe=(python3 -c "$MDWE_EXEC"); mdwe_note="under PR_SET_MDWE"; fi
  "${mdwe[@]}" timeout --foreground 300 chroot --userspec="$user" "$RUN_ROOT" /usr/bin/env -i -C "${workdir:-/}" "${env_lines[@]}" \
    TINI_SUBREAPER=1 HEARTH_ADMIN_TOKEN="$token" "${entry[@]}" \
    serve --config /etc/hearth/plugins.toml --listen "127.0.0.1:$port" >"$WORK/serve.log" 2>&1 &
  SERVER_PID=$!
  code=000
  for i in $(seq 1 900); do   # 180 s: load_timeout + warmup_timeout
    code=$(curl -s -m 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/readyz" || true)
    [ "$code" = 200 ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.2
  done
  if [ "$code" = 200 ]; then
    ok "/readyz 200 after $(( ($(date +%s%N) - t0) / 1000000 )) ms, $mdwe_note"
  else
    tail -n 30 "$WORK/serve.log" >&2
    fail "/readyz answered $code (server log tail above)"
  fi
  if [ "$code" = 200 ]; then
    step "image: the pod's Host names, the admin token, /livez"
    local svc bad unauth authed livez
    svc=$(curl -s -m 5 -o /dev/null -w '%{http_code}' -H 'Host: hearth.hearth.svc:8000' "http://127.0.0.1:$port/readyz" || true)
    bad=$(curl -s -m 5 -o /dev/null -w '%{http_code}' -H 'Host: rebound.example' "http://127.0.0.1:$port/readyz" || true)
    # (A pod-IP Host passes because the pod listens on 0.0.0.0; here it listens on loopback,
    # so that case is left to guard.rs's unit tests.)
    livez=$(curl -s -m 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/livez" || true)
    unauth=$(curl -s -m 30 -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$port/api/warmup" || true)
    authed=$(curl -s -m 60 -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $token" "http://127.0.0.1:$port/api/warmup" || true)
    if [ "$svc" = 200 ] && [ "$bad" = 403 ] && [ "$livez" = 200 ] && [ "$unauth" = 401 ] && [ "$authed" = 200 ]; then
      ok "Service name 200, foreign Host 403, /livez 200, warmup without token 401, with HEARTH_ADMIN_TOKEN 200"
    else
      fail "Service name $svc (want 200), foreign Host $bad (403), /livez $livez (200), warmup without token $unauth (401), with it $authed (200)"
    fi
    step "image: its HEALTHCHECK command, run inside it (port 8000 swapped for this server's)"
    local health=()
    mapfile -t health < <(buildah inspect --type image --format '{{range .Docker.Config.Healthcheck.Test}}{{println .}}{{end}}' "$IMAGE" | grep .)
    if [ "${health[0]:-}" != CMD-SHELL ] || [ -z "${health[1]:-}" ]; then
      fail "the image has no HEALTHCHECK (build with --format docker)"
    elif out=$(in_image 10 /bin/sh -c "${health[1]//:8000/:$port}" 2>&1); then
      ok "${health[1]} → healthy"
    else
      fail "HEALTHCHECK '${health[1]}' reports unhealthy: $out"
    fi
  fi

  if [ "$code" = 200 ]; then
    step "image: /metrics has what the alerts and the HPA use (promtool check metrics)"
    local missing=() name
    curl -s -m 10 "http://127.0.0.1:$port/metrics" >"$WORK/metrics.txt" || true
    for name in 'hearth_ready ' 'hearth_state{state="ERROR"}' 'hearth_service_ready{' \
                'hearth_conversations_in_flight ' 'hearth_startup_seconds '; do
      grep -qF "$name" "$WORK/metrics.txt" || missing+=("$name")
    done
    grep -qE '^hearth_service_required\{|^hearth_service_ready\{.*required=' "$WORK/metrics.txt" \
      || missing+=("hearth_service_required or hearth_service_ready{required}")
    if [ ${#missing[@]} -gt 0 ]; then
      fail "/metrics lacks ${missing[*]}"
    elif ! command -v promtool >/dev/null 2>&1; then
      fail "promtool not found (apt-get install prometheus)"
    elif out=$(timeout 30 promtool check metrics <"$WORK/metrics.txt" 2>&1); then
      ok "$(grep -c '^hearth_' "$WORK/metrics.txt") samples; the alerts' and the HPA's metrics are there"
    else
      fail "promtool check metrics: $out"
    fi
  fi

  step "image: SIGTERM, clean exit"
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID"
    rc=
    for i in $(seq 1 150); do   # shutdown_timeout (10 s) + 1 s, with room
      kill -0 "$SERVER_PID" 2>/dev/null || { rc=0; wait "$SERVER_PID" || rc=$?; break; }
      sleep 0.1
    done
    local left=0 p
    for p in /proc/[0-9]*; do
      [ "$(readlink "$p/root" 2>/dev/null)" = "$RUN_ROOT" ] && left=$((left + 1))
    done
    if [ "$rc" = 0 ] && [ "$left" = 0 ]; then
      ok "exit 0; no process left in the image's root"
    else
      tail -n 15 "$WORK/serve.log" >&2
      fail "after SIGTERM: exit status ${rc:-none within 15 s}, $left process(es) left in the image's root"
    fi
    SERVER_PID=
  else
    rc=0; wait "$SERVER_PID" || rc=$?
    tail -n 15 "$WORK/serve.log" >&2
    fail "the server had already exited (status $rc; log tail above)"
    SERVER_PID=
  fi
}

if [ "$SKIP_IMAGE" = 1 ]; then
  step "image"; skip "--skip-image"
elif ! command -v buildah >/dev/null 2>&1; then
  step "image"; skip "buildah is not installed (scripts/install-deps.sh installs it)"
elif [ "$(id -u)" != 0 ]; then
  step "image"; skip "needs root (buildah storage, mounts, chroot)"
else
  image_tests
fi

echo
echo "check-deploy: took $(( $(date +%s) - SECONDS_TOTAL ))s"
echo "check-deploy: $PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
