#!/usr/bin/env bash
# Runs TestArena on this machine: installs what is missing, builds release
# binaries, starts testarena-app and testarena-worker on SQLite with the
# bundled example firmware (lx106 target, real QEMU), submits a demo queue
# and prints the dashboard URL. Ctrl-C stops both. A second run reuses the
# home (./var, or $TESTARENA_HOME).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

ensure_cargo
ensure_packages "${BUILD_PACKAGES[@]}" "${FIRMWARE_PACKAGES[@]}" curl

echo "==> building release binaries (the first build takes a few minutes)"
cargo build --release --locked --workspace --bins
bin="$root/target/release"

home=${TESTARENA_HOME:-$root/var}
listen=${TESTARENA_LISTEN:-127.0.0.1:8080}   # written to a new config
mkdir -p "$home"
home=$(cd "$home" && pwd)
config="$home/config.toml"
repo="$home/example-firmware.git"

if [ ! -d "$repo" ]; then
    echo "==> making the example repository from tests/fixtures/firmware"
    bash tests/fixtures/make-repo.sh "$repo"
fi

if [ ! -f "$config" ]; then
    echo "==> writing $config"
    cat > "$config" <<TOML
# Written by scripts/run.sh; see docs/DESIGN.md section 2 for every key.
home = "$home"
default_target = "lx106"

[server]
listen = "$listen"
static_dir = "$root/static"

[worker]
slots = 2

[[repos]]
name = "example-firmware"
url = "$repo"

TOML
    # The lx106 core on Debian's QEMU (docs/LX106.md): the one profile file.
    cat tests/fixtures/lx106.toml >> "$config"
fi
export TESTARENA_CONFIG="$config"
export TESTARENA_HOME="$home"
unset TESTARENA_DATABASE
# $TESTARENA_LISTEN overrides the config (the app reads it too).
if [ -z "${TESTARENA_LISTEN:-}" ]; then
    listen=$(sed -n 's/^listen = "\(.*\)"$/\1/p' "$config" | head -n 1)
fi

"$bin/testarena-app" check-config >/dev/null
"$bin/testarena-app" migrate

password_file="$home/admin-password"
new_password=""
if [ ! -f "$password_file" ]; then
    new_password=$(head -c 4096 /dev/urandom | LC_ALL=C tr -dc 'A-Za-z0-9' | head -c 20)
    printf '%s\n' "$new_password" | "$bin/testarena-app" user add admin --admin --password-stdin
    (umask 077 && printf '%s\n' "$new_password" > "$password_file")
fi
password=$(head -n 1 "$password_file")

pids=()
stop() {
    trap - INT TERM EXIT
    if [ ${#pids[@]} -gt 0 ]; then
        echo
        echo "==> stopping testarena-worker and testarena-app"
        kill -TERM "${pids[@]}" 2>/dev/null || true
        wait "${pids[@]}" 2>/dev/null || true
    fi
}
trap stop INT TERM EXIT

url="http://$listen"
if curl -fsS -o /dev/null "$url/" 2>/dev/null; then
    echo "error: something already answers on $listen; set TESTARENA_LISTEN=127.0.0.1:PORT" >&2
    exit 1
fi

mkdir -p "$home/logs"
"$bin/testarena-app" serve >>"$home/logs/app.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
    curl -fsS "$url/api/v1/health" >/dev/null 2>&1 && break
    kill -0 "${pids[0]}" 2>/dev/null || { echo "testarena-app failed to start; see $home/logs/app.log" >&2; exit 1; }
    sleep 0.1
done
"$bin/testarena-worker" >>"$home/logs/worker.log" 2>&1 &
pids+=($!)

echo "==> submitting a demo queue (branch main: unit and smoke scenarios)"
demo=$(curl -fsS -u "admin:$password" -H 'Content-Type: application/json' \
    -d '{"branch": "main", "scenarios": ["scenarios/unit.xml", "scenarios/smoke.xml"]}' \
    "$url/api/v1/queues")
demo_id=$(printf '%s' "$demo" | sed -n 's/^{"id":"\([^"]*\)".*/\1/p')

cat <<MSG

  TestArena is running.

  Dashboard:  $url/
  Username:   admin
MSG
if [ -n "$new_password" ]; then
    echo "  Password:   $new_password   (shown once; kept in $password_file)"
else
    echo "  Password:   in $password_file"
fi
cat <<MSG
  Demo queue: ${demo_id:-see the dashboard}   ($url/api/v1/queues/${demo_id})
  Home:       $home   (logs in $home/logs)

  Press Ctrl-C to stop.
MSG
wait "${pids[@]}"
