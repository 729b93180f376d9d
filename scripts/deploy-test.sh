#!/usr/bin/env bash
# Checks TestArena's deployment with real tools: the systemd units
# (systemd-analyze), the nginx site (nginx -t, then a real nginx on loopback
# in front of a real testarena-app and testarena-worker: API, dashboard,
# events, headers, TLS), scripts/install.sh (twice into a temp root: the
# second run changes nothing; uninstall), the config example, shellcheck, and
# a backup taken while a queue runs, restored the documented way.
#
# Called by scripts/test.sh after the cargo tests; runs on its own too
# (it builds the debug binaries it needs). Everything it starts is stopped,
# and its temp dir removed, when it exits. Exits non-zero at the first
# failure, saying what failed.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
ensure_cargo

for tool in nginx systemd-analyze openssl curl sqlite3 shellcheck git make \
    qemu-system-xtensa xtensa-lx106-elf-gcc; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "error: $tool is not installed (scripts/test.sh installs what this needs)" >&2
        exit 1
    }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/testarena-deploy.XXXXXX")
# nginx's workers (an unprivileged user when we are root) read the
# dashboard's files under it.
chmod 755 "$tmp"

current_step=""
pids=()
step() {
    current_step=$*
    printf '\n==> %s\n' "$*"
}
ok() { printf '    ok: %s\n' "$*"; }
fail() {
    printf '\nFAILED: %s\n    %s\n' "$current_step" "$*" >&2
    exit 1
}
on_error() {
    local rc=$? line=$1 cmd=$2
    # A failing subshell is reported by the command that ran it.
    [ "$BASH_SUBSHELL" -eq 0 ] || return 0
    printf '\nFAILED: %s\n    line %s: %s (exit %s)\n' "$current_step" "$line" "$cmd" "$rc" >&2
}
trap 'on_error "$LINENO" "$BASH_COMMAND"' ERR

# Sends SIGTERM to PID and waits up to SECONDS for it to end, then SIGKILL.
# Prints how long it took, in tenths of a second.
stop_pid() {
    local pid=$1 seconds=${2:-10} tenths=0
    kill -TERM "$pid" 2>/dev/null || { echo 0; return 0; }
    # Until it is gone, or a zombie (state Z in /proc/PID/stat) left for `wait`.
    while kill -0 "$pid" 2>/dev/null \
        && [ "$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -c1)" != Z ]; do
        if [ $tenths -ge $((seconds * 10)) ]; then
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.1
        tenths=$((tenths + 1))
    done
    wait "$pid" 2>/dev/null || true
    echo "$tenths"
}

cleanup() {
    local rc=$? pid
    trap - ERR
    set +e
    # Newest first: curl, worker (it stops its QEMU), app, nginx.
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        pid=${pids[i]}
        kill -0 "$pid" 2>/dev/null && stop_pid "$pid" 15 >/dev/null
    done
    if [ $rc -ne 0 ]; then
        for log in "$tmp"/home/logs/*.log "$tmp"/restore-logs/*.log "$tmp"/nginx/error.log; do
            [ -s "$log" ] || continue
            echo "---- last lines of $log" >&2
            tail -n 15 "$log" >&2
        done
    fi
    rm -rf "$tmp"
    exit $rc
}
trap cleanup EXIT

# Sets variable NAME to a free TCP port on loopback, in 20000-59999 (never
# 8080 or 18080), not given out before.
used_ports=" "
free_port() {
    local port
    while :; do
        port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
        case $used_ports in *" $port "*) continue ;; esac
        # Something answers: taken.
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then continue; fi
        used_ports="$used_ports$port "
        printf -v "$1" '%s' "$port"
        return
    done
}

# Waits up to SECONDS for COMMAND to succeed.
wait_for() {
    local seconds=$1 tenths=0
    shift
    until "$@" >/dev/null 2>&1; do
        [ $tenths -lt $((seconds * 10)) ] || return 1
        sleep 0.1
        tenths=$((tenths + 1))
    done
}

# The value of KEY= in a unit file.
unit_value() { sed -n "s/^$2=//p" "$1" | tail -n 1; }

# -----------------------------------------------------------------------
step "shellcheck on every script"
shellcheck -x scripts/*.sh deploy/*.sh .ci/run tests/fixtures/*.sh
ok "scripts/*.sh deploy/*.sh .ci/run tests/fixtures/*.sh"

step "build the binaries (debug)"
# The whole workspace, as scripts/test.sh builds it: building two packages
# alone resolves their features anew and rebuilds the binaries.
cargo build --locked --workspace --bins >"$tmp/build.out" 2>&1 \
    || fail "cargo build: $(tail -n 20 "$tmp/build.out")"
ok "testarena-app, testarena-worker"
bin=$repo/target/debug
app=$bin/testarena-app

# -----------------------------------------------------------------------
step "deploy/config.example.toml: every key, and it parses"
example=deploy/config.example.toml
clean_env=(env -u TESTARENA_CONFIG -u TESTARENA_HOME -u TESTARENA_DATABASE -u TESTARENA_LISTEN RUST_BACKTRACE=0)
"${clean_env[@]}" "$app" --config "$example" check-config >"$tmp/effective.toml" 2>"$tmp/check.err" \
    || fail "check-config refuses $example: $(cat "$tmp/check.err")"
ok "testarena-app --config $example check-config"
# Every key of DESIGN section 2 (and static_dir) is there, set or commented out.
fence='```'
keys=$(sed -n '/^## 2\. Configuration/,/^## 3\./p' docs/DESIGN.md \
    | sed -n "/^${fence}toml/,/^${fence}\$/p" | sed -n 's/^\([a-z_]*\) *=.*/\1/p' | sort -u)
[ "$(echo "$keys" | wc -l)" -ge 25 ] || fail "found only $(echo "$keys" | wc -w) keys in DESIGN section 2"
for key in $keys static_dir; do
    grep -Eq "^(# ?)?$key = " "$example" || fail "$example does not document the key $key"
done
ok "documents all $(echo "$keys" | wc -w) keys of DESIGN section 2"
# With every commented-out example switched on, it still parses.
sed -E 's/^#(\[|[a-z_]+ = | {2,}")/\1/' "$example" >"$tmp/all-on.toml"
"${clean_env[@]}" "$app" --config "$tmp/all-on.toml" check-config >"$tmp/all-on.out" 2>"$tmp/check.err" \
    || fail "with its commented examples on, $example does not parse: $(cat "$tmp/check.err")"
for line in '^id = "host-1"' '^\[targets.lx106\]' '^token_env = "GITEA_TOKEN"'; do
    grep -q "$line" "$tmp/all-on.out" || fail "the commented examples were not all switched on ($line)"
done
ok "so does it with the commented-out examples switched on"

# -----------------------------------------------------------------------
step "scripts/install.sh --root: twice in a row, the second run changes nothing"
root=$tmp/root
mkdir -p "$root/etc"
if [ "$(id -u)" -eq 0 ]; then
    # A system image's user database, so that the user is created (in it).
    for db in passwd group shadow gshadow; do
        grep '^root:' "/etc/$db" >"$root/etc/$db" || true
    done
fi
# A snapshot of what install.sh installs from, so that edits made to the
# working tree while this runs cannot look like a change.
src=$tmp/src
mkdir -p "$src/scripts" "$src/docs"
cp -a scripts/install.sh "$src/scripts/"
cp -a deploy static "$src/"
cp -a docs/OPERATIONS.md "$src/docs/"
listing() {
    (cd "$1" && find . -printf '%p %M %u:%g %s %T@ %l\n' | sort \
        && find . -type f -print0 | sort -z | xargs -0 sha256sum)
}
bash "$src/scripts/install.sh" --root "$root" --from "$bin" >"$tmp/install1.out" \
    || fail "first install failed: $(cat "$tmp/install1.out")"
listing "$root" >"$tmp/listing1"
bash "$src/scripts/install.sh" --root "$root" --from "$bin" >"$tmp/install2.out" \
    || fail "second install failed: $(cat "$tmp/install2.out")"
listing "$root" >"$tmp/listing2"
diff -u "$tmp/listing1" "$tmp/listing2" >"$tmp/listing.diff" \
    || fail "the second install changed files: $(cat "$tmp/listing.diff")"
grep -q '^==> 0 change(s)$' "$tmp/install2.out" || fail "the second install reports changes: $(cat "$tmp/install2.out")"
ok "$(sed -n 's/^==> \(.*change.*\)/\1/p' "$tmp/install1.out"), then 0; same modes, owners, sizes, times and checksums"
mode_of() { stat -c '%a' "$root$1"; }
for spec in /testarena:750 /etc/testarena:750 /etc/testarena/config.toml:640 /etc/testarena/env:640 \
    /usr/local/bin/testarena-app:755 /usr/local/bin/testarena-worker:755 /usr/local/bin/testarena-prune:755 \
    /usr/share/testarena/static/index.html:644 /usr/local/lib/systemd/system/testarena-app.service:644 \
    /usr/local/lib/systemd/system/testarena-worker.service:644 /etc/nginx/sites-available/testarena.conf:644; do
    [ "$(mode_of "${spec%:*}")" = "${spec##*:}" ] || fail "${spec%:*} has mode $(mode_of "${spec%:*}"), not ${spec##*:}"
done
cmp -s "$src/static/js/app.js" "$root/usr/share/testarena/static/js/app.js" || fail "static files not installed"
ok "modes: /testarena 0750, config and env 0640, binaries 0755"
if [ "$(id -u)" -eq 0 ]; then
    ids=$(awk -F: '$1 == "testarena" { print $3 ":" $4 ":" $6 ":" $7 }' "$root/etc/passwd")
    [ -n "$ids" ] || fail "the user testarena was not created in $root/etc/passwd"
    uid=${ids%%:*}
    gid=$(echo "$ids" | cut -d: -f2)
    [ "$uid" -lt 1000 ] || fail "testarena is not a system user (uid $uid)"
    [ "$(echo "$ids" | cut -d: -f3-)" = "/testarena:/usr/sbin/nologin" ] || fail "testarena's home and shell: $ids"
    [ "$(stat -c %u:%g "$root/testarena")" = "$uid:$gid" ] || fail "/testarena is not owned by testarena"
    [ "$(stat -c %u:%g "$root/etc/testarena/config.toml")" = "0:$gid" ] || fail "config.toml is not root:testarena"
    ok "system user testarena ($uid:$gid, /testarena, nologin) owns /testarena; config is root:testarena"
fi
# The config is the operator's: a change survives a reinstall.
echo "# local change" >>"$root/etc/testarena/config.toml"
bash "$src/scripts/install.sh" --root "$root" --from "$bin" >"$tmp/install3.out"
tail -n 1 "$root/etc/testarena/config.toml" | grep -q '^# local change$' || fail "install overwrote the config"
grep -q '^==> 0 change(s)$' "$tmp/install3.out" || fail "reinstall over an edited config changed something"
ok "an edited config.toml is kept"
# Uninstall keeps the data and the config; --purge removes them, and the user.
cp -a "$root" "$tmp/root2"
touch "$tmp/root2/testarena/testarena.db"
bash "$src/scripts/install.sh" --root "$tmp/root2" --uninstall >"$tmp/uninstall.out"
for gone in /usr/local/bin/testarena-app /usr/share/testarena /usr/local/lib/systemd/system/testarena-app.service; do
    [ ! -e "$tmp/root2$gone" ] || fail "--uninstall left $gone: $(cat "$tmp/uninstall.out")"
done
for kept in /testarena/testarena.db /etc/testarena/config.toml; do
    [ -f "$tmp/root2$kept" ] || fail "--uninstall removed $kept"
done
bash "$src/scripts/install.sh" --root "$tmp/root2" --uninstall >"$tmp/uninstall2.out"
grep -q '^==> 0 change(s)$' "$tmp/uninstall2.out" || fail "a second --uninstall changed something"
bash "$src/scripts/install.sh" --root "$tmp/root2" --uninstall --purge >/dev/null
left=$(cd "$tmp/root2" && find . -path '*testarena*')
[ -z "$left" ] || fail "--uninstall --purge left: $left"
if [ "$(id -u)" -eq 0 ]; then
    ! grep -q '^testarena:' "$tmp/root2/etc/passwd" || fail "--purge kept the user"
fi
ok "--uninstall keeps /testarena and /etc/testarena; --purge removes everything"
rm -rf "$tmp/root2"

# -----------------------------------------------------------------------
step "systemd-analyze verify on both units"
units=$root/usr/local/lib/systemd/system
mkdir -p "$tmp/units"
for unit in testarena-app.service testarena-worker.service; do
    # The executables must exist: point the unit at the installed copies.
    sed "s#/usr/local/bin/#$root/usr/local/bin/#g" "$units/$unit" >"$tmp/units/$unit"
done
if ! systemd-analyze verify "$tmp/units/testarena-app.service" "$tmp/units/testarena-worker.service" \
    >"$tmp/verify.out" 2>&1; then
    fail "systemd-analyze verify: $(cat "$tmp/verify.out")"
fi
# Warnings (unknown keys, bad values) do not fail verify: none may name our units.
if grep -i 'testarena' "$tmp/verify.out"; then
    fail "systemd-analyze verify warns about the units"
fi
ok "systemd-analyze verify: no error, no warning"
# The boards drop-in (docs/OPERATIONS.md section 8), read beside the worker
# unit as systemd reads /etc/systemd/system/<unit>.d/: no error, no warning,
# the USB serial classes and dialout, and nothing else of the unit changed.
mkdir -p "$tmp/units/testarena-worker.service.d"
cp deploy/systemd/testarena-worker.service.d/boards.conf "$tmp/units/testarena-worker.service.d/"
if ! systemd-analyze verify "$tmp/units/testarena-worker.service" >"$tmp/verify-boards.out" 2>&1 \
    || grep -i 'testarena\|boards.conf' "$tmp/verify-boards.out"; then
    fail "systemd-analyze verify with the boards drop-in: $(cat "$tmp/verify-boards.out")"
fi
for setting in 'DeviceAllow=char-ttyUSB rw' 'DeviceAllow=char-ttyACM rw' DevicePolicy=closed \
    SupplementaryGroups=dialout PrivateDevices=no; do
    grep -qx "$setting" deploy/systemd/testarena-worker.service.d/boards.conf \
        || fail "boards.conf lacks $setting"
done
[ "$(grep -c '^[A-Za-z]' deploy/systemd/testarena-worker.service.d/boards.conf)" -eq 5 ] \
    || fail "boards.conf sets more than the devices and the group"
rm -r "$tmp/units/testarena-worker.service.d"
ok "systemd-analyze verify with the boards drop-in: no error, no warning"
for unit in testarena-app.service testarena-worker.service; do
    u=$units/$unit
    for setting in User=testarena Group=testarena EnvironmentFile=-/etc/testarena/env \
        Restart=on-failure KillMode=mixed NoNewPrivileges=yes ProtectSystem=strict \
        ReadWritePaths=/testarena ProtectHome=yes PrivateTmp=yes PrivateDevices=yes \
        CapabilityBoundingSet= LockPersonality=yes SystemCallArchitectures=native; do
        grep -qx "$setting" "$u" || fail "$unit lacks $setting"
    done
    grep -q '^RestrictAddressFamilies=AF_' "$u" || fail "$unit lacks RestrictAddressFamilies"
done
grep -qx 'ExecStartPre=/usr/local/bin/testarena-app migrate' "$units/testarena-app.service" \
    || fail "testarena-app.service does not migrate in ExecStartPre"
ok "user, env file, restart, KillMode=mixed and the hardening are set"
# The worker stops within abort_grace_s + 2 s; systemd must wait longer.
grace=$(sed -n 's/^abort_grace_s = //p' "$tmp/effective.toml")
stop_timeout=$(unit_value "$units/testarena-worker.service" TimeoutStopSec)
stop_s=${stop_timeout%s}
[[ $stop_s =~ ^[0-9]+$ ]] || fail "TimeoutStopSec=$stop_timeout is not in seconds"
[ "$stop_s" -gt $((grace + 2)) ] || fail "the worker's TimeoutStopSec=$stop_timeout is not above abort_grace_s + 2 s ($grace + 2)"
ok "worker TimeoutStopSec=$stop_timeout > abort_grace_s ($grace) + 2 s"
# Exposure, 0.0 (locked down) to 10.0; --threshold is in tenths.
for spec in testarena-app.service:20 testarena-worker.service:20; do
    unit=${spec%:*}
    systemd-analyze security --offline=yes --threshold="${spec#*:}" "$tmp/units/$unit" >"$tmp/security.out" 2>&1 \
        || fail "systemd-analyze security: $unit is over $((${spec#*:} / 10)).$((${spec#*:} % 10)): $(tail -n 1 "$tmp/security.out")"
    ok "$(tail -n 1 "$tmp/security.out" | sed 's/^→ //') (at most $((${spec#*:} / 10)).$((${spec#*:} % 10)))"
done

# -----------------------------------------------------------------------
step "nginx -t on the site, with a self-signed certificate"
host=testarena.example.org   # the site's server_name, as shipped
site=$root/etc/nginx/sites-available/testarena.conf
grep -q "server_name $host;" "$site" || fail "the site's server_name is not $host"
mkdir -p "$tmp/tls" "$tmp/nginx/tmp" "$tmp/acme" "$tmp/empty-static"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=$host" -addext "subjectAltName=DNS:$host" \
    -keyout "$tmp/tls/privkey.pem" -out "$tmp/tls/fullchain.pem" 2>/dev/null
app_port="" http_port="" https_port=""
free_port app_port
free_port http_port
free_port https_port
# The shipped site with test ports, paths and certificate; nothing else changes.
sed -e "s#^\( *\)listen 80;#\1listen 127.0.0.1:$http_port;#" \
    -e "s#^\( *\)listen 443 ssl http2;#\1listen 127.0.0.1:$https_port ssl http2;#" \
    -e '/listen \[::\]:/d' \
    -e "s#server 127.0.0.1:8080;#server 127.0.0.1:$app_port;#" \
    -e "s#/etc/ssl/testarena/#$tmp/tls/#" \
    -e "s#root /usr/share/testarena/static;#root $root/usr/share/testarena/static;#" \
    -e "s#root /var/www/html;#root $tmp/acme;#" \
    "$site" >"$tmp/nginx/testarena.conf"
for gone in 'listen 80;' 'listen 443' ':8080' ' /etc/ssl/' ' /usr/share/testarena' ' /var/www'; do
    ! grep -v '^ *#' "$tmp/nginx/testarena.conf" | grep -qF "$gone" \
        || fail "the test copy of the site still has $gone"
done
cat >"$tmp/nginx/nginx.conf" <<NGINX
worker_processes 1;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections 256; }
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log $tmp/nginx/access.log;
    client_body_temp_path $tmp/nginx/tmp/body;
    proxy_temp_path $tmp/nginx/tmp/proxy;
    fastcgi_temp_path $tmp/nginx/tmp/fastcgi;
    uwsgi_temp_path $tmp/nginx/tmp/uwsgi;
    scgi_temp_path $tmp/nginx/tmp/scgi;
    sendfile on;
    include $tmp/nginx/testarena.conf;
}
NGINX
nginx_args=(-p "$tmp/nginx/" -c "$tmp/nginx/nginx.conf" -e "$tmp/nginx/error.log")
nginx -t "${nginx_args[@]}" >"$tmp/nginx-t.out" 2>&1 || fail "nginx -t: $(cat "$tmp/nginx-t.out")"
grep -q 'test is successful' "$tmp/nginx-t.out" || fail "nginx -t: $(cat "$tmp/nginx-t.out")"
if grep -q '\[warn\]' "$tmp/nginx-t.out"; then
    sed -n 's/^/    /; /\[warn\]/p' "$tmp/nginx-t.out"
fi
ok "nginx -t: syntax is ok, test is successful"

# -----------------------------------------------------------------------
step "a real nginx in front of a real testarena-app"
home=$tmp/home
mkdir -p "$home/logs"
bash tests/fixtures/make-repo.sh "$tmp/firmware.git" >/dev/null
config=$home/config.toml
grace_test=2
cat >"$config" <<TOML
home = "$home"
default_target = "lx106"

[server]
listen = "127.0.0.1:$app_port"
# Empty: the dashboard answered through nginx comes from nginx's root.
static_dir = "$tmp/empty-static"

[worker]
id = "deploy-test"
slots = 1
poll_interval_ms = 100
abort_grace_s = $grace_test
heartbeat_s = 1
lost_after_s = 5

[[repos]]
name = "firmware"
url = "$tmp/firmware.git"

TOML
cat "$repo/tests/fixtures/lx106.toml" >>"$config"
export TESTARENA_CONFIG=$config RUST_BACKTRACE=0
unset TESTARENA_HOME TESTARENA_DATABASE TESTARENA_LISTEN

# The units' own command lines, pointed at the installed binaries.
unit_cmd() {
    local cmd
    cmd=$(unit_value "$units/$1" "$2")
    [ -n "$cmd" ] || fail "$1 has no $2"
    echo "${cmd//\/usr\/local\/bin\//$root/usr/local/bin/}"
}
read -r -a app_pre <<<"$(unit_cmd testarena-app.service ExecStartPre)"
read -r -a app_start <<<"$(unit_cmd testarena-app.service ExecStart)"
read -r -a worker_start <<<"$(unit_cmd testarena-worker.service ExecStart)"

start_app() {
    "${app_pre[@]}" >>"$home/logs/app.log" 2>&1 || fail "ExecStartPre (${app_pre[*]}) failed"
    "${app_start[@]}" >>"$home/logs/app.log" 2>&1 &
    pids+=($!)
    app_pid=$!
    wait_for 30 curl -fsS "http://127.0.0.1:$app_port/api/v1/health" \
        || fail "testarena-app did not answer on 127.0.0.1:$app_port"
}
start_worker() {
    "${worker_start[@]}" >>"$home/logs/worker.log" 2>&1 &
    pids+=($!)
    worker_pid=$!
}
start_app
ok "ExecStartPre and ExecStart of testarena-app.service: up on 127.0.0.1:$app_port"
password="deploy-test password 1"
printf '%s\n' "$password" | "$app" user add admin --admin --password-stdin >/dev/null

nginx "${nginx_args[@]}" -g 'daemon off;' &
pids+=($!)
base=https://$host:$https_port
curl_tls=(--cacert "$tmp/tls/fullchain.pem" --resolve "$host:$https_port:127.0.0.1")
c() { curl -sS "${curl_tls[@]}" "$@"; }
wait_for 20 c -o /dev/null "$base/api/v1/health" || fail "nginx does not answer on 127.0.0.1:$https_port"
ok "nginx on 127.0.0.1:$http_port (HTTP) and :$https_port (HTTPS), certificate verified"

# The API, anonymous and authenticated.
health=$(c -f "$base/api/v1/health")
[[ $health == *'"status":"ok"'* ]] || fail "health through nginx: $health"
ok "GET /api/v1/health: $health"
code=$(c -o /dev/null -w '%{http_code}' "$base/api/v1/me")
[ "$code" = 401 ] || fail "GET /api/v1/me without credentials: $code, not 401"
me=$(c -f -u "admin:$password" "$base/api/v1/me")
[[ $me == *'"username":"admin"'* ]] || fail "GET /api/v1/me as admin: $me"
ok "GET /api/v1/me: 401 anonymous, the user with Basic auth"
# The session cookie is Secure only when the app knows the client used TLS.
c -o /dev/null -D "$tmp/session.h" -H 'Content-Type: application/json' \
    -d "{\"username\":\"admin\",\"password\":\"$password\"}" "$base/api/v1/session"
grep -i '^set-cookie:' "$tmp/session.h" | grep -qi 'secure' \
    || fail "the session cookie through nginx is not Secure (X-Forwarded-Proto): $(cat "$tmp/session.h")"
curl -sS -o /dev/null -D "$tmp/session-direct.h" -H 'Content-Type: application/json' \
    -d "{\"username\":\"admin\",\"password\":\"$password\"}" "http://127.0.0.1:$app_port/api/v1/session"
! grep -i '^set-cookie:' "$tmp/session-direct.h" | grep -qi 'secure' \
    || fail "the session cookie over plain HTTP is Secure: the check above proves nothing"
ok "POST /api/v1/session: the cookie is Secure through nginx (X-Forwarded-Proto), not over plain HTTP"

# The dashboard, from nginx's root (the app has no static files here).
code=$(curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$app_port/index.html")
[ "$code" = 404 ] || fail "the app itself serves index.html ($code): the next check would prove nothing"
c -f -D "$tmp/index.h" -o "$tmp/index.html" "$base/"
grep -q '<title>TestArena</title>' "$tmp/index.html" || fail "GET / is not the dashboard"
cmp -s "$tmp/index.html" "$src/static/index.html" || fail "GET / is not static/index.html"
grep -qi '^cache-control: no-cache' "$tmp/index.h" || fail "index.html is not revalidated: $(cat "$tmp/index.h")"
c -f -D "$tmp/css.h" -o /dev/null --compressed "$base/css/app.css"
grep -qi '^content-encoding: gzip' "$tmp/css.h" || fail "app.css is not gzipped: $(cat "$tmp/css.h")"
grep -qi '^cache-control: max-age=[1-9]' "$tmp/css.h" || fail "app.css has no max-age: $(cat "$tmp/css.h")"
c -f -D "$tmp/js.h" -o /dev/null "$base/js/app.js"
grep -qi '^content-type: application/javascript' "$tmp/js.h" || fail "app.js type: $(cat "$tmp/js.h")"
ok "GET / is static/index.html (no-cache); css gzipped with max-age; js as application/javascript"

# Security headers, on the dashboard, on the API and on errors.
check_headers() {
    local what=$1 file=$2 header
    for header in 'strict-transport-security: max-age=[0-9]+' \
        "content-security-policy: default-src 'self';.*frame-ancestors 'none'" \
        'x-content-type-options: nosniff' 'referrer-policy: ' 'x-frame-options: deny'; do
        grep -Eqi "^$header" "$file" || fail "$what lacks the header $header: $(cat "$file")"
    done
    [ "$(grep -ci '^x-content-type-options:' "$file")" = 1 ] || fail "$what: X-Content-Type-Options twice"
    if grep -Eqi "^content-security-policy:.*'unsafe-(inline|eval)'" "$file"; then
        fail "$what: the CSP allows unsafe-inline or unsafe-eval"
    fi
}
check_headers "GET /" "$tmp/index.h"
c -D "$tmp/health.h" -o /dev/null "$base/api/v1/health"
check_headers "GET /api/v1/health" "$tmp/health.h"
c -D "$tmp/404.h" -o /dev/null -u "admin:$password" "$base/api/v1/queues/no-such-queue"
grep -q '^HTTP/[0-9.]* 404' "$tmp/404.h" || fail "an unknown queue: $(head -n 1 "$tmp/404.h")"
check_headers "a 404 from the app" "$tmp/404.h"
c -D "$tmp/log.h" -o /dev/null -u "admin:$password" "$base/api/v1/queues/no-such-queue/logs/queue.log"
check_headers "a log read" "$tmp/log.h"
ok "HSTS, CSP (default-src 'self' ... frame-ancestors 'none'), nosniff once, Referrer-Policy, X-Frame-Options"

# Plain HTTP is redirected; old TLS is refused; HTTP/2 is spoken.
redirect=$(curl -sS -o /dev/null -w '%{http_code} %{redirect_url}' -H "Host: $host" \
    "http://127.0.0.1:$http_port/api/v1/health?x=1")
[ "$redirect" = "301 https://$host/api/v1/health?x=1" ] || fail "HTTP answers: $redirect"
ok "HTTP: 301 to https://$host/..."
if c --tlsv1.1 --tls-max 1.1 -o /dev/null "$base/api/v1/health" 2>/dev/null; then
    fail "TLS 1.1 is accepted"
fi
version=$(c -o /dev/null -w '%{http_version}' --tlsv1.3 "$base/api/v1/health")
[ "$version" = 2 ] || fail "HTTP version over TLS 1.3: $version, not 2"
version=$(c -o /dev/null -w '%{http_version}' --tlsv1.2 --tls-max 1.2 "$base/api/v1/health")
[ "$version" = 2 ] || fail "TLS 1.2 with HTTP/2: $version"
ok "TLS 1.1 refused; TLS 1.2 and 1.3 with HTTP/2"

# Body size: up to the app's max_body_bytes reaches the app; one more byte is 413.
head -c 1048576 /dev/zero | tr '\0' 'a' >"$tmp/body"
code=$(c -o "$tmp/body.out" -w '%{http_code}' -u "admin:$password" -H 'Content-Type: application/json' \
    --data-binary "@$tmp/body" "$base/api/v1/queues")
[ "$code" = 400 ] || fail "a 1 MiB body: $code (the app answers 400 to it), $(cat "$tmp/body.out")"
printf 'a' >>"$tmp/body"
code=$(c -o /dev/null -w '%{http_code}' -u "admin:$password" -H 'Content-Type: application/json' \
    --data-binary "@$tmp/body" "$base/api/v1/queues")
[ "$code" = 413 ] || fail "a body of 1 MiB + 1 byte: $code, not 413"
ok "client_max_body_size = max_body_bytes: 1 MiB reaches the app, 1 MiB + 1 byte is 413"

# -----------------------------------------------------------------------
step "the worker runs a queue; its events stream through nginx"
start_worker
# Five tasks of the hang branch: each boots, hangs and ends after its
# 5 s quiet-timeout, so the queue runs for half a minute.
queue=$(c -f -u "admin:$password" -H 'Content-Type: application/json' \
    -d '{"branch":"hang","scenarios":["scenarios/unit.xml","scenarios/unit.xml","scenarios/unit.xml","scenarios/unit.xml","scenarios/unit.xml"]}' \
    "$base/api/v1/queues") || fail "submitting a queue through nginx failed"
queue_id=$(printf '%s' "$queue" | sed -n 's/^{"id":"\([^"]*\)".*/\1/p')
[ -n "$queue_id" ] || fail "no queue id in $queue"
queue_status() {
    c -f -u "admin:$password" "$base/api/v1/queues/$queue_id" | sed -n 's/^{"id":"[^"]*","status":"\([^"]*\)".*/\1/p'
}
is_running() { [ "$(queue_status)" = running ]; }
wait_for 60 is_running || fail "queue $queue_id is not running: $(queue_status)"
ok "queue $queue_id (branch hang, 5 tasks) submitted through nginx, running"

# The stream stays open while the queue runs: the first event must come
# through at once, not when nginx's buffer fills or the stream ends.
# curl itself in the background (not a function: its subshell's pid would
# not be curl's).
curl -sS -N "${curl_tls[@]}" -u "admin:$password" "$base/api/v1/queues/$queue_id/events" \
    >"$tmp/events.txt" 2>/dev/null &
curl_pid=$!
pids+=("$curl_pid")
has_status_event() { grep -q '^event: status' "$tmp/events.txt"; }
wait_for 5 has_status_event || fail "no 'event: status' within 5 s: $(head -c 300 "$tmp/events.txt")"
kill -0 "$curl_pid" 2>/dev/null || fail "the event stream ended while the queue runs"
has_log_event() { grep -q '^event: log' "$tmp/events.txt"; }
wait_for 10 has_log_event || fail "no 'event: log' within 10 s"
stop_pid "$curl_pid" >/dev/null
ok "GET .../events: 'event: status' and 'event: log' arrive while the stream stays open"

# -----------------------------------------------------------------------
step "testarena-app backup while the queue runs"
is_running || fail "the queue is no longer running"
backup=$tmp/backups/testarena.db
mkdir -p "$tmp/backups"
"$app" backup "$backup" >"$tmp/backup.out" 2>&1 || fail "backup: $(cat "$tmp/backup.out")"
ok "$(cat "$tmp/backup.out")"
[ "$(stat -c %a "$backup")" = 600 ] || fail "the backup has mode $(stat -c %a "$backup"), not 600"
[ "$(sqlite3 "$backup" 'PRAGMA integrity_check')" = ok ] || fail "sqlite3 integrity_check of the backup"
in_backup=$(sqlite3 "$backup" "SELECT status FROM queues WHERE id = '$queue_id'")
[ "$in_backup" = running ] || fail "the backup holds the queue as '$in_backup', not running"
ok "mode 0600; sqlite3 PRAGMA integrity_check: ok; holds $queue_id, running"
sum=$(sha256sum <"$backup")
if "$app" backup "$backup" >/dev/null 2>&1; then fail "a second backup to the same file succeeded"; fi
[ "$(sha256sum <"$backup")" = "$sum" ] || fail "a refused backup changed the file"
ok "an existing file is never overwritten"

# -----------------------------------------------------------------------
step "stop the worker as systemd does (KillMode=mixed: SIGTERM to the worker alone)"
is_running || fail "the queue is no longer running"
tenths=$(stop_pid "$worker_pid" "$stop_s")
# abort_grace_s + 2 s, and a second for the scheduling of a busy machine.
[ "$tenths" -le $(((grace_test + 2 + 1) * 10)) ] \
    || fail "the worker took $((tenths / 10)).$((tenths % 10)) s to stop (abort_grace_s $grace_test + 2 s)"
ok "the worker stopped in $((tenths / 10)).$((tenths % 10)) s (abort_grace_s $grace_test + 2 s; TimeoutStopSec $stop_timeout)"
aborted=$(c -f -u "admin:$password" "$base/api/v1/queues/$queue_id")
[[ $aborted == *'"status":"aborted","status_reason":"worker stopped"'* ]] \
    || fail "the queue after the worker stopped: $(printf '%s' "$aborted" | head -c 200)"
ok "the queue is aborted, reason \"worker stopped\""
leftovers=$(grep -lsa "TESTARENA_QUEUE_ID=$queue_id" /proc/[0-9]*/environ || true)
[ -z "$leftovers" ] || fail "processes of the queue outlived the worker: $leftovers"
ok "no process of the queue is left (no QEMU, no build)"

# -----------------------------------------------------------------------
step "restore: stop both, copy the backup in, start"
tenths=$(stop_pid "$app_pid" 15)
ok "testarena-app stopped in $((tenths / 10)).$((tenths % 10)) s"
db=$home/testarena.db
rm -f "$db" "$db-wal" "$db-shm"
install -m 600 "$backup" "$db"
start_app
restored=$(c -f -u "admin:$password" "$base/api/v1/queues/$queue_id") \
    || fail "the restored queue is not readable through nginx"
[[ $restored == *'"status":"running"'* ]] || fail "restored queue: $(printf '%s' "$restored" | head -c 200)"
ok "the app serves the restored database: $queue_id is there, running as when the backup was taken"
start_worker
# Its worker is gone: a farm failure, so with retry_errors = 1 (the
# default) the recovery sends it back for a second attempt and keeps the
# first one's record.
is_retried() {
    c -f -u "admin:$password" "$base/api/v1/queues/$queue_id" \
        | jq -e '.attempt == 2 and .attempts[0].reason == "worker lost"' >/dev/null
}
wait_for 20 is_retried || fail "the worker did not recover the restored running queue: $(queue_status)"
ok "the worker's recovery retries it: attempt 2, attempt 1 \"worker lost\""
c -f -X POST -u "admin:$password" -H 'X-Requested-With: testarena' \
    "$base/api/v1/queues/$queue_id/abort" >/dev/null || fail "abort of the retried queue"
is_aborted() { [[ $(queue_status) == aborted ]]; }
wait_for 20 is_aborted || fail "the retried queue was not aborted: $(queue_status)"
ok "the retried queue aborted"
[ "$(sqlite3 "$db" 'PRAGMA integrity_check')" = ok ] || fail "integrity_check of the restored database"
ok "sqlite3 PRAGMA integrity_check of the restored database: ok"

# -----------------------------------------------------------------------
step "retention: testarena-prune deletes queues that ended before the cutoff"
token=$(c -f -u "admin:$password" -H 'Content-Type: application/json' -d '{"name":"prune"}' \
    "$base/api/v1/tokens" | sed -n 's/.*"secret":"\([^"]*\)".*/\1/p')
[ -n "$token" ] || fail "no token secret from POST /api/v1/tokens"
prune=$root/usr/local/bin/testarena-prune
export TESTARENA_URL=http://127.0.0.1:$app_port TESTARENA_TOKEN=$token
"$prune" --days 1 >"$tmp/prune.out" || fail "testarena-prune --days 1: $(cat "$tmp/prune.out")"
grep -q '^0 queue(s)' "$tmp/prune.out" || fail "testarena-prune --days 1 found queues: $(cat "$tmp/prune.out")"
sleep 1   # the cutoff has whole seconds
"$prune" --days 0 --dry-run >"$tmp/prune.out"
grep -qx "would delete $queue_id" "$tmp/prune.out" || fail "--dry-run: $(cat "$tmp/prune.out")"
[ -d "$home/queues/$queue_id" ] || fail "--dry-run deleted the queue's files"
"$prune" --days 0 >"$tmp/prune.out" || fail "testarena-prune --days 0: $(cat "$tmp/prune.out")"
grep -qx "deleted $queue_id" "$tmp/prune.out" || fail "testarena-prune --days 0: $(cat "$tmp/prune.out")"
code=$(c -o /dev/null -w '%{http_code}' -u "admin:$password" "$base/api/v1/queues/$queue_id")
[ "$code" = 404 ] || fail "the pruned queue answers $code"
[ ! -e "$home/queues/$queue_id" ] || fail "the pruned queue's files are still there"
unset TESTARENA_URL TESTARENA_TOKEN
ok "--days 1 keeps it, --dry-run lists it, --days 0 deletes its rows and $home/queues/<id>/"

# -----------------------------------------------------------------------
step "nginx sets the client address the app rate-limits by"
# The app trusts X-Real-IP from loopback (nginx). nginx must replace what a
# client sends, or each failed login could claim a new address.
limit=$(sed -n 's/^login_attempts_per_minute = //p' "$tmp/effective.toml")
for i in $(seq 1 "$limit"); do
    code=$(c -o /dev/null -w '%{http_code}' -H "X-Real-IP: 10.0.0.$i" -H "X-Forwarded-For: 10.0.1.$i" \
        -H 'Content-Type: application/json' -d '{"username":"admin","password":"wrong password"}' \
        "$base/api/v1/session")
    [ "$code" = 401 ] || fail "failed login $i: $code, not 401"
done
code=$(c -o /dev/null -w '%{http_code}' -H "X-Real-IP: 10.0.0.250" \
    -H 'Content-Type: application/json' -d '{"username":"admin","password":"wrong password"}' \
    "$base/api/v1/session")
[ "$code" = 429 ] || fail "login $((limit + 1)) with a forged X-Real-IP: $code, not 429"
ok "$limit failed logins with forged X-Real-IP/X-Forwarded-For, then 429: the client's headers are replaced"

current_step=""
printf '\n==> deployment checks passed\n'
