#!/usr/bin/env bash
# Generated requests against the real app: schemathesis (from PyPI, in a
# venv under target/) reads GET /api/v1/openapi.json and sends what it
# generates for every operation, with a valid token. Any 5xx, an undocumented
# status code, content type or header, or a body that breaks the document's
# schema fails the run.
#
# The app runs on a temp home with the lx106 fixture repository (so queue
# submissions reach the git checks and get stored); no worker runs, so
# queues stay waiting. `GET .../events` is left out: a waiting queue's
# stream never ends (tests/e2e and crates/testarena-api/tests cover it).
#
# usage: scripts/schemathesis.sh         (SCHEMATHESIS_EXAMPLES=N per operation, default 60)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

version=4.32.5
examples=${SCHEMATHESIS_EXAMPLES:-60}
venv=$root/target/schemathesis-venv

if ! "$venv/bin/st" --version 2>/dev/null | grep -q "$version"; then
    echo "==> installing schemathesis $version into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$version"
fi

app=$root/target/debug/testarena-app
if [ ! -x "$app" ]; then
    ensure_cargo
    cargo build --locked --workspace --bins
fi

work=$(mktemp -d)
app_pid=""
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    if [ -n "$app_pid" ]; then
        kill -TERM "$app_pid" 2>/dev/null || true
        wait "$app_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

bash tests/fixtures/make-repo.sh "$work/firmware.git" >/dev/null
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"
cat >"$work/config.toml" <<TOML
home = "$work/home"
default_target = "lx106"

[server]
listen = "127.0.0.1:$port"
static_dir = "$root/static"
# Generated sign-ins are wrong most of the time: keep them answering 401
# rather than 429 for the whole run (429 is documented and allowed anyway).
login_attempts_per_minute = 100000

[[repos]]
name = "firmware"
url = "$work/firmware.git"

TOML
cat tests/fixtures/lx106.toml >>"$work/config.toml"
export TESTARENA_CONFIG=$work/config.toml
unset TESTARENA_HOME TESTARENA_DATABASE TESTARENA_LISTEN

"$app" migrate >/dev/null
password=$(head -c 4096 /dev/urandom | LC_ALL=C tr -dc 'A-Za-z0-9' | head -c 24)
for user in fuzzer keeper; do
    printf '%s\n' "$password" | "$app" user add "$user" --admin --password-stdin >/dev/null
done
"$app" serve >"$work/app.log" 2>&1 &
app_pid=$!
for _ in $(seq 1 200); do
    curl -fsS -o /dev/null "$url/api/v1/health" 2>/dev/null && break
    kill -0 "$app_pid" 2>/dev/null || { cat "$work/app.log" >&2; exit 1; }
    sleep 0.1
done

# One token per pass: the last pass may revoke its own token or disable its
# own user (a generated id can be anyone's), which must not blind the first.
new_token() {
    curl -fsS -u "$1:$password" -H 'Content-Type: application/json' \
        -d '{"name": "schemathesis"}' "$url/api/v1/tokens" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["secret"])'
}
# A few queues and tokens, so that generated ids sometimes exist.
for _ in 1 2 3; do
    curl -fsS -o /dev/null -u "keeper:$password" -H 'Content-Type: application/json' \
        -d '{"branch": "main", "scenarios": ["scenarios/quick.xml"]}' "$url/api/v1/queues"
done

checks=not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance
# Operations that can take away the caller's own access.
own_access='^(revoke_token|update_user|delete_user|delete_session)$'
run() {
    "$venv/bin/st" run "$url/api/v1/openapi.json" \
        --header "Authorization: Bearer $1" \
        --checks "$checks" \
        --exclude-operation-id queue_events \
        --max-examples "$examples" \
        --request-timeout 20 \
        --seed 20261121 \
        --no-color \
        "${@:2}"
}

status=0
# schemathesis keeps a cache (.schemathesis/) in its working directory.
cd "$work"
echo "==> schemathesis: every operation but events and those that revoke access"
run "$(new_token fuzzer)" --exclude-operation-id-regex "$own_access" || status=1
echo "==> schemathesis: revoke, update and delete users and tokens"
run "$(new_token keeper)" --include-operation-id-regex "$own_access" || status=1

if grep -nE "status=5[0-9]{2}|internal error|panicked" "$work/app.log" | grep -v "status=503" | head -n 20; then
    echo "schemathesis: the app logged internal errors (above)" >&2
    status=1
fi
if ! kill -0 "$app_pid" 2>/dev/null; then
    echo "schemathesis: the app died" >&2
    status=1
fi
exit "$status"
