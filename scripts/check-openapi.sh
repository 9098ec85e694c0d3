#!/usr/bin/env bash
# check-openapi.sh - validates Hearth's OpenAPI document and checks a live
# server against it.
#
#  1. installs openapi-spec-validator and schemathesis (pinned below) into the
#     tools venv ${HEARTH_CACHE:-$HOME/.cache/hearth}/venv-tools, once;
#  2. starts target/debug/hearth serve on a free loopback port with the
#     scripted engines (a test fixture) and an admin token, and waits for
#     /readyz 200;
#  3. fetches /openapi.json and validates it with openapi-spec-validator;
#  4. runs schemathesis against the live server, three times:
#     - every operation, with the admin token: the handlers themselves;
#     - the admin operations without the token: the 401s;
#     - every operation with a Host the guard refuses: the 403s;
#     each bounded by a number of examples per operation and a time budget.
#     Any 5xx, any undocumented status code, content type or header, or any
#     body that breaks its schema fails the script.
#
# Needs the workspace built (cargo build --workspace: the binary and the
# scripted plugins in target/debug). Exit 0 when everything holds.
#
# Usage: scripts/check-openapi.sh
# Environment: HEARTH_CACHE (cache root), PYTHON (to make the venv, default
# python3), CARGO_TARGET_DIR, OPENAPI_MAX_EXAMPLES (per operation, default
# 50), OPENAPI_MAX_TIME (seconds for the main run, default 60),
# SCHEMATHESIS_SEED (to replay a run; each run prints its seed).
set -euo pipefail

# ---- pinned tools ---------------------------------------------------------------------------
OPENAPI_SPEC_VALIDATOR_VERSION=0.9.0
SCHEMATHESIS_VERSION=4.32.5

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python3}
CACHE=${HEARTH_CACHE:-$HOME/.cache/hearth}
VENV=$CACHE/venv-tools
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug
MAX_EXAMPLES=${OPENAPI_MAX_EXAMPLES:-50}
MAX_TIME=${OPENAPI_MAX_TIME:-60}

# Every request goes to this machine's loopback, never through a proxy.
export no_proxy="127.0.0.1,localhost${no_proxy:+,$no_proxy}" NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}"

die() { echo "check-openapi: error: $*" >&2; exit 1; }
say() { echo "check-openapi: $*"; }

# ---- 1. tools -------------------------------------------------------------------------------
mkdir -p "$CACHE"
tools_ok() {
  "$VENV/bin/python" - "$OPENAPI_SPEC_VALIDATOR_VERSION" "$SCHEMATHESIS_VERSION" <<'EOF' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(0 if (version("openapi-spec-validator"), version("schemathesis")) == tuple(sys.argv[1:3]) else 1)
EOF
}
if ! tools_ok; then
  # The venv is shared with scripts/fetch-models.sh: one writer at a time.
  exec 9>"$CACHE/.lock"
  flock 9
  if ! tools_ok; then
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV" \
      || die "could not create $VENV with '$PYTHON -m venv' (on Debian: apt-get install python3-venv)"
    say "installing openapi-spec-validator $OPENAPI_SPEC_VALIDATOR_VERSION and schemathesis $SCHEMATHESIS_VERSION into $VENV"
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$VENV/bin/python" -m pip install -q \
      "openapi-spec-validator==$OPENAPI_SPEC_VALIDATOR_VERSION" "schemathesis==$SCHEMATHESIS_VERSION" \
      || die "pip install into $VENV failed (is PyPI reachable?)"
  fi
  flock -u 9
  exec 9>&-
fi
say "tools: openapi-spec-validator $OPENAPI_SPEC_VALIDATOR_VERSION, schemathesis $SCHEMATHESIS_VERSION"

# ---- 2. a live server -----------------------------------------------------------------------
for f in hearth libhearth_scripted_tts.so libhearth_scripted_stt.so libhearth_scripted_chat.so; do
  [ -e "$BIN/$f" ] || die "$BIN/$f is not built: run 'cargo build --workspace' first"
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/hearth-openapi.XXXXXX")
SERVER_PID=
stop_server() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    # hearth exits within shutdown_timeout (2 s here) plus 1 s; then it is killed.
    for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=
}
cleanup() {
  stop_server
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PORT=$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE=http://127.0.0.1:$PORT
TOKEN=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
cat >"$TMP/plugins.toml" <<EOF
[host]
plugin_dir = "$BIN"
shutdown_timeout = "2s"
# Short, so that schemathesis's retries and restarts reach the supervisor
# rather than only the cooldown's 429 (which is checked all the same).
retry_cooldown = "200ms"

[tts]
plugin = "scripted-tts"
[tts.config]
load_ms = 200

[stt]
plugin = "scripted-stt"
[stt.config]

[chat]
plugin = "scripted-chat"
[chat.config]
EOF
say "starting hearth serve on $BASE (scripted engines, admin token set)"
HEARTH_LOG=warn HEARTH_ADMIN_TOKEN=$TOKEN "$BIN/hearth" serve -c "$TMP/plugins.toml" --listen "127.0.0.1:$PORT" \
  >"$TMP/server.log" 2>&1 &
SERVER_PID=$!

get() { # get PATH [OUT]: prints the status code (000 when nothing answers)
  "$VENV/bin/python" - "$BASE$1" "${2:-/dev/null}" <<'EOF'
import sys, urllib.request, urllib.error
try:
    with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
        open(sys.argv[2], "wb").write(r.read()); print(r.status)
except urllib.error.HTTPError as e:
    print(e.code)
except OSError:
    print("000")
EOF
}
deadline=$((SECONDS + 60))
until [ "$(get /readyz)" = 200 ]; do
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$TMP/server.log" >&2; die "hearth serve exited (log above)"; }
  [ $SECONDS -lt $deadline ] || { cat "$TMP/server.log" >&2; die "/readyz did not answer 200 within 60 s"; }
  sleep 0.2
done
say "ready"

# ---- 3. the document --------------------------------------------------------------------------
status=$(get /openapi.json "$TMP/openapi.json")
[ "$status" = 200 ] || die "GET /openapi.json answered $status"
"$VENV/bin/python" - "$TMP/openapi.json" <<'EOF' || die "/openapi.json is not an OpenAPI 3.1 document"
import json, sys
doc = json.load(open(sys.argv[1]))
assert str(doc.get("openapi", "")).startswith("3.1."), doc.get("openapi")
print(f"check-openapi: OpenAPI {doc['openapi']}, {len(doc['paths'])} paths")
EOF
"$VENV/bin/openapi-spec-validator" "$TMP/openapi.json" || die "openapi-spec-validator refused /openapi.json"

# ---- 4. schemathesis against the live server --------------------------------------------------
# Checks: no 5xx; every status code, content type, header and body as
# documented; invalid input (negative tests) refused with a 4xx. Also the
# rest that applies without links between operations: methods the document
# does not list answer 405 with `Allow`, and admin endpoints refuse a
# missing token. Not checked: positive_data_acceptance, which expects a
# schema-valid request to be accepted: a WebSocket endpoint cannot accept
# a plain GET (it answers 400, as documented), and the upgrade headers are
# not described as parameters because a fuzzer's HTTP client cannot follow
# an upgrade (schemathesis's warning that these operations "mostly
# rejected generated data" is this 400). Nothing else is excluded: every
# operation is tested, including the event stream (schemathesis reads a
# bounded number of events of an endless `follow=true` stream) and the
# admin endpoints, which really reload, retry, restart and re-warm the
# scripted engines.
CHECKS=not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance
CHECKS=$CHECKS,response_schema_conformance,negative_data_rejection,unsupported_method,allow_header_conformance
CHECKS=$CHECKS,missing_required_header,ignored_auth
SEED_ARGS=()
[ -z "${SCHEMATHESIS_SEED:-}" ] || SEED_ARGS=(--seed "$SCHEMATHESIS_SEED")
run_schemathesis() { # run_schemathesis NAME CHECKS ARGS...: one bounded run
  local name=$1 checks=$2; shift 2
  say "schemathesis: $name"
  # From $TMP: schemathesis and hypothesis keep their caches in the working directory.
  (cd "$TMP" && timeout $((MAX_TIME + 120)) "$VENV/bin/schemathesis" run "$TMP/openapi.json" --url "$BASE" \
    --checks "$checks" --request-timeout 10 --no-color "${SEED_ARGS[@]}" "$@") \
    || { echo "--- server log" >&2; tail -n 50 "$TMP/server.log" >&2; die "schemathesis ($name) failed"; }
}
run_schemathesis "every operation, with the admin token" "$CHECKS" \
  -H "Authorization: Bearer $TOKEN" --max-examples "$MAX_EXAMPLES" --max-time "$MAX_TIME"
run_schemathesis "admin operations without the token (401)" "$CHECKS" \
  --include-tag admin --max-examples 10 --max-time 10
# The guard refuses before routing, so an undocumented method gets this 403
# too, not a 405: the two method checks do not apply to this run.
run_schemathesis "every operation for a Host the guard refuses (403)" \
  "${CHECKS/,unsupported_method,allow_header_conformance/}" \
  -H "Host: rebound.example" --max-examples 5 --max-time 10

kill -0 "$SERVER_PID" 2>/dev/null || { cat "$TMP/server.log" >&2; die "hearth serve died during the run"; }
stop_server
say "OK: the document is valid OpenAPI 3.1 and the live server keeps to it"
