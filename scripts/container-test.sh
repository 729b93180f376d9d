#!/usr/bin/env bash
# Tests the container deployment (deploy/container/, docs/OPERATIONS.md
# section 7) with a real engine: rootful Podman and podman-compose from
# Debian. It builds a Debian base image itself (no container registry is
# reachable here), builds deploy/container/Containerfile on it, starts
# deploy/container/compose.yaml under a project name of its own with its
# ports on loopback only, creates the first admin with the documented
# command, submits the demo queue (the bundled example firmware on the lx106
# target) through nginx and the API, sees it pass, stops the stack (the
# daemons must exit by themselves on SIGTERM, the worker aborting a running
# queue as "worker stopped"), re-creates it and finds the
# queue and its logs still there, then removes everything it made.
#
# Binaries: users build the image from the release build (cargo build
# --release --workspace --bins). This test takes the debug binaries that
# scripts/test.sh has already built (target/debug; BIN_DIR=target/release
# to test those instead), stripped of debug info, so that it stays within a
# few minutes on 2 cores and needs no second cargo build.
#
# Caches under target/container/: the base rootfs tarball (mmdebstrap, about
# a minute) and the imported base image localhost/debian-base:bookworm are
# kept, so a second run only builds the small top layers. The test image,
# containers, volume and network are removed on every exit (a trap), each by
# its name.
#
# Engine settings for this machine (runc, cgroupfs, explicit ulimits) go in
# a containers.conf that only this script uses (CONTAINERS_CONF), never in
# the compose file that users get.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

t0=$SECONDS
tstep=$SECONDS
step() {
    printf '\n==> [%3ds, +%3ds] %s\n' "$((SECONDS - t0))" "$((SECONDS - tstep))" "$*"
    tstep=$SECONDS
}
die() {
    echo "container-test: FAIL: $*" >&2
    exit 1
}

step "packages: podman, podman-compose, mmdebstrap, runc"
ensure_packages podman podman-compose mmdebstrap runc containernetworking-plugins \
    binutils curl jq git

bin_dir=${BIN_DIR:-$root/target/debug}
for b in testarena testarena-app testarena-worker; do
    if [ ! -x "$bin_dir/$b" ]; then
        if [ -z "${BIN_DIR:-}" ]; then
            ensure_cargo
            step "building the debug binaries (cargo build --workspace --bins)"
            cargo build --workspace --bins --locked
            break
        fi
        die "$bin_dir/$b is missing"
    fi
done

cache=$root/target/container
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)

# Only this script's engine settings. runc and cgroupfs: the default runtime
# (crun) and the systemd cgroup manager refuse this machine's cgroup setup;
# explicit ulimits because the defaults exceed the hard limits here.
conf=$cache/containers.conf
cat >"$conf" <<'CONF'
# Written by scripts/container-test.sh for this machine only.
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
export CONTAINERS_CONF=$conf

# What the image needs (the Containerfile's list), in the base already, so
# that its apt-get step has nothing to do.
base_packages=(ca-certificates libssl3 zlib1g libpq5 git make gcc-xtensa-lx106
    binutils-xtensa-lx106 qemu-system-misc nginx tini passwd)
mirror=${TESTARENA_DEBIAN_MIRROR:-http://deb.debian.org/debian}
security_mirror=${TESTARENA_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
base_image=localhost/debian-base:bookworm
base_key=$(printf '%s\n' "${base_packages[@]}" "$mirror" "$security_mirror" | sha256sum | cut -c1-16)
rootfs=$cache/debian-base-bookworm-$base_key.tar

step "base image $base_image (cache key $base_key)"
if [ "$(podman image inspect --format '{{index .Labels "org.testarena.base"}}' "$base_image" 2>/dev/null || true)" = "$base_key" ]; then
    echo "cached: $base_image"
else
    if [ ! -s "$rootfs" ]; then
        echo "mmdebstrap --variant=essential bookworm (Debian packages only)"
        include=$(IFS=,; echo "${base_packages[*]}")
        mmdebstrap --quiet --format=tar --variant=essential --include="$include" bookworm "$rootfs.part" \
            "deb $mirror bookworm main" "deb $mirror bookworm-updates main" \
            "deb $security_mirror bookworm-security main" </dev/null
        mv "$rootfs.part" "$rootfs"
    else
        echo "cached: $rootfs"
    fi
    podman import --quiet --change "LABEL org.testarena.base=$base_key" \
        --change 'CMD ["/bin/sh"]' "$rootfs" "$base_image" >/dev/null
fi

# Names of everything this run makes; the trap removes exactly these.
project=tact$$
image=localhost/testarena-container-test:$project
run_dir=$cache/run-$project
containers=("${project}_worker_1" "${project}_app_1" "${project}_admin")
volume=${project}_testarena-home
network=${project}_default
compose_files=(-f "$root/deploy/container/compose.yaml" -f "$run_dir/compose.test.yaml")
compose() { podman-compose -p "$project" "${compose_files[@]}" "$@"; }

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    if [ "$rc" -ne 0 ] && podman container exists "${project}_app_1" 2>/dev/null; then
        echo "--- logs of the failed run ---" >&2
        podman logs --tail 40 "${project}_app_1" >&2
        podman logs --tail 60 "${project}_worker_1" >&2
    fi
    echo "==> teardown: $project"
    if [ -f "$run_dir/compose.test.yaml" ]; then
        compose down -v -t 30 >/dev/null 2>&1
    fi
    for c in "${containers[@]}"; do
        podman container exists "$c" 2>/dev/null && podman rm -f -t 30 "$c" >/dev/null
    done
    podman volume exists "$volume" 2>/dev/null && podman volume rm -f "$volume" >/dev/null
    podman network exists "$network" 2>/dev/null && podman network rm -f "$network" >/dev/null
    podman image exists "$image" 2>/dev/null && podman rmi -f "$image" >/dev/null
    rm -rf "$run_dir"
    for c in "${containers[@]}"; do
        podman container exists "$c" 2>/dev/null && { echo "left behind: container $c" >&2; rc=1; }
    done
    podman volume exists "$volume" 2>/dev/null && { echo "left behind: volume $volume" >&2; rc=1; }
    echo "==> container test took $((SECONDS - t0)) s"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "image $image (FROM $base_image; binaries from $bin_dir)"
mkdir -p "$run_dir/context/bin"
cp -r "$root/deploy/container/entrypoint.sh" "$root/deploy/container/nginx" "$run_dir/context/"
for b in testarena testarena-app testarena-worker; do
    # Debug info is most of a debug binary: without it the layer is small.
    objcopy --strip-debug "$bin_dir/$b" "$run_dir/context/bin/$b"
done
podman build --quiet --build-arg BASE="$base_image" -t "$image" \
    -f "$root/deploy/container/Containerfile" "$run_dir/context" >/dev/null
podman run --rm "$image" testarena-app --version

# The example firmware repository, owned by the containers' user (git
# refuses repositories owned by someone else), mounted read-only.
bash tests/fixtures/make-repo.sh "$run_dir/example-firmware.git" >/dev/null
chown -R 10001:10001 "$run_dir/example-firmware.git"

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
http_port=$(free_port)
https_port=$(free_port)
url=http://127.0.0.1:$http_port

cat >"$run_dir/config.toml" <<TOML
# Written by scripts/container-test.sh.
home = "/testarena"
default_target = "lx106"

[server]
listen = "127.0.0.1:8080"

[worker]
slots = 1
abort_grace_s = 5

[[repos]]
name = "example-firmware"
url = "/srv/repos/example-firmware.git"

TOML
cat tests/fixtures/lx106.toml >>"$run_dir/config.toml"
chmod 0644 "$run_dir/config.toml"

# The test's additions to the users' compose file: the example repository.
cat >"$run_dir/compose.test.yaml" <<YAML
services:
  app:
    volumes:
      - $run_dir/example-firmware.git:/srv/repos/example-firmware.git:ro
  worker:
    volumes:
      - $run_dir/example-firmware.git:/srv/repos/example-firmware.git:ro
YAML
export TESTARENA_IMAGE=$image
export TESTARENA_CONFIG_FILE=$run_dir/config.toml
export TESTARENA_HTTP=127.0.0.1:$http_port
export TESTARENA_HTTPS=127.0.0.1:$https_port
unset TESTARENA_NGINX

wait_health() {
    local deadline=$((SECONDS + 60))
    until curl -fsS -o /dev/null "$url/api/v1/health" 2>/dev/null; do
        [ "$SECONDS" -lt "$deadline" ] || die "no health answer on $url within 60 s"
        sleep 0.5
    done
}

step "podman-compose up -d (project $project, nginx on $url)"
compose up -d >"$run_dir/up.log" 2>&1 || { cat "$run_dir/up.log" >&2; die "compose up failed"; }
wait_health
curl -fsS "$url/api/v1/health" | jq -c .

step "first admin: podman-compose run --rm --no-deps -T app testarena-app user add admin --admin --password-stdin"
password=$(head -c 4096 /dev/urandom | LC_ALL=C tr -dc 'A-Za-z0-9' | head -c 20)
printf '%s\n' "$password" | compose run --rm --no-deps -T --name "${project}_admin" app \
    testarena-app user add admin --admin --password-stdin
curl -fsS -u "admin:$password" "$url/api/v1/me" | jq -e '.username == "admin"' >/dev/null \
    || die "the new admin cannot sign in through nginx"

step "checks inside the containers: user, PID 1, nginx, health check"
for c in "${project}_app_1" "${project}_worker_1"; do
    uid=$(podman exec "$c" id -u)
    [ "$uid" = 10001 ] || die "$c runs as uid $uid, not 10001"
    pid1=$(podman exec "$c" cat /proc/1/comm)
    [ "$pid1" = tini ] || die "PID 1 of $c is $pid1, not tini"
done
podman exec "${project}_worker_1" testarena-worker --version >/dev/null
podman healthcheck run "${project}_app_1" || die "the app's health check fails"
echo "app healthy; daemons run as uid 10001 under tini"
# The dashboard (built into the app) through nginx, with nginx's headers.
headers=$(curl -fsS -D - -o /dev/null "$url/")
grep -qi '^content-security-policy: default-src' <<<"$headers" || die "no CSP header from nginx"

step "demo queue through the API (branch main: unit and smoke on lx106)"
queue=$(curl -fsS -u "admin:$password" -H 'Content-Type: application/json' \
    -d '{"branch": "main", "scenarios": ["scenarios/unit.xml", "scenarios/smoke.xml"]}' \
    "$url/api/v1/queues" | jq -r .id)
case $queue in "" | null) die "submit returned no queue id" ;; esac
echo "queue $queue"
deadline=$((SECONDS + 300))
status=waiting
while :; do
    status=$(curl -fsS -u "admin:$password" "$url/api/v1/queues/$queue" | jq -r .status)
    case $status in
    passed) break ;;
    waiting | running) ;;
    *) die "queue $queue ended $status" ;;
    esac
    [ "$SECONDS" -lt "$deadline" ] || die "queue $queue still $status after 300 s"
    sleep 1
done
echo "queue $queue passed"
logs_before=$(curl -fsS -u "admin:$password" "$url/api/v1/queues/$queue/logs" | jq -S -c .)
[ "$logs_before" != '[]' ] || die "queue $queue has no logs"
queue_log_before=$(curl -fsS -u "admin:$password" "$url/api/v1/queues/$queue/logs/queue.log")
[ -n "$queue_log_before" ] || die "queue.log is empty"

step "a queue that hangs (branch hang), running when the stack stops"
hung=$(curl -fsS -u "admin:$password" -H 'Content-Type: application/json' \
    -d '{"branch": "hang", "scenarios": ["scenarios/unit.xml"]}' \
    "$url/api/v1/queues" | jq -r .id)
deadline=$((SECONDS + 60))
until [ "$(curl -fsS -u "admin:$password" "$url/api/v1/queues/$hung" | jq -r .status)" = running ]; do
    [ "$SECONDS" -lt "$deadline" ] || die "queue $hung not running after 60 s"
    sleep 0.5
done
# Stopped before its quiet-timeout (5 s) would fail it.
sleep 1
echo "queue $hung running"

step "stop (SIGTERM; the daemons exit by themselves, code 0, within abort_grace_s + 2 s)"
stop_started=$SECONDS
podman stop -t 30 "${project}_worker_1" >/dev/null
stop_took=$((SECONDS - stop_started))
compose stop -t 30 >/dev/null 2>&1
for c in "${project}_worker_1" "${project}_app_1"; do
    code=$(podman inspect --format '{{.State.ExitCode}}' "$c")
    [ "$code" = 0 ] || die "$c exited $code on SIGTERM (not a clean stop)"
done
# abort_grace_s (5) + 2, plus the engine's own second or two.
[ "$stop_took" -le 10 ] || die "stopping took $stop_took s"
echo "both exited 0; the worker stopped in $stop_took s"

step "re-create the stack (down without -v, up -d): the queue and its logs are still there"
compose down -t 30 >/dev/null 2>&1
compose up -d >"$run_dir/up2.log" 2>&1 || { cat "$run_dir/up2.log" >&2; die "second compose up failed"; }
wait_health
status=$(curl -fsS -u "admin:$password" "$url/api/v1/queues/$queue" | jq -r .status)
[ "$status" = passed ] || die "after the restart queue $queue is $status"
logs_after=$(curl -fsS -u "admin:$password" "$url/api/v1/queues/$queue/logs" | jq -S -c .)
[ "$logs_after" = "$logs_before" ] || die "the log list changed across the restart"
queue_log_after=$(curl -fsS -u "admin:$password" "$url/api/v1/queues/$queue/logs/queue.log")
[ "$queue_log_after" = "$queue_log_before" ] || die "queue.log changed across the restart"
hung_json=$(curl -fsS -u "admin:$password" "$url/api/v1/queues/$hung")
jq -e '.status == "aborted" and .status_reason == "worker stopped"' <<<"$hung_json" >/dev/null \
    || die "the running queue did not end as aborted \"worker stopped\": $(jq -c '{status, status_reason}' <<<"$hung_json")"
echo "queue $hung: aborted, worker stopped"
curl -fsS "$url/api/v1/health" | jq -e '.workers | length >= 1' >/dev/null \
    || die "no worker in health after the restart"
echo "queue $queue: passed, $(jq 'length' <<<"$logs_after") log files, unchanged"

step "down -v: containers, volume and network removed"
compose down -v -t 30 >/dev/null 2>&1
for c in "${project}_worker_1" "${project}_app_1"; do
    ! podman container exists "$c" || die "$c still exists after down"
done
echo "container test passed"
