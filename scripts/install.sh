#!/usr/bin/env bash
# Installs TestArena from a release build, or removes it (docs/OPERATIONS.md).
#
#   cargo build --release --locked --workspace --bins
#   sudo scripts/install.sh                    # install or upgrade
#   sudo scripts/install.sh --uninstall        # remove; keeps /testarena and /etc/testarena
#   sudo scripts/install.sh --uninstall --purge   # ...and those, the nginx site and the user
#
# Options:
#   --root DIR   install under DIR instead of / (DESTDIR-style; for images
#                and tests). The testarena user is created in DIR/etc/passwd
#                when that file exists, and not at all otherwise.
#   --from DIR   where the binaries are (default: target/release)
#   --boards     also install the worker's drop-in for boards on USB serial
#                ports (/etc/systemd/system/testarena-worker.service.d/boards.conf:
#                the ttyUSB and ttyACM devices and the dialout group)
#
# What it installs (every path under --root):
#   /usr/local/bin/testarena-app, testarena-worker, testarena (the CLI, if built)
#   /usr/local/bin/testarena-prune               deletes old queues (deploy/prune-queues.sh)
#   /usr/share/testarena/static/                 the dashboard (served by nginx)
#   /usr/local/lib/systemd/system/testarena-app.service, testarena-worker.service
#   /etc/testarena/config.toml, env              only if absent (0640 root:testarena)
#   /etc/nginx/sites-available/testarena.conf    only if absent
#   /usr/share/doc/testarena/                    OPERATIONS.md and the shipped examples
#   /testarena                                   the home, 0750 testarena:testarena
# plus the system user and group `testarena`. It never enables, starts or
# restarts a service and never touches an existing config: run it again
# and nothing changes.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)

root=/
from=$repo/target/release
mode=install
purge=false
boards=false
while [ $# -gt 0 ]; do
    case $1 in
        --root) root=${2:?--root needs a directory}; shift 2 ;;
        --root=*) root=${1#--root=}; shift ;;
        --from) from=${2:?--from needs a directory}; shift 2 ;;
        --from=*) from=${1#--from=}; shift ;;
        --uninstall) mode=uninstall; shift ;;
        --purge) purge=true; shift ;;
        --boards) boards=true; shift ;;
        -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
        *) echo "error: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
if $purge && [ "$mode" != uninstall ]; then
    echo "error: --purge goes with --uninstall" >&2
    exit 2
fi

USER_NAME=testarena
BINARIES=(testarena-app testarena-worker)
OPTIONAL_BINARIES=(testarena)
UNITS=(testarena-app.service testarena-worker.service)

is_root() { [ "$(id -u)" -eq 0 ]; }
if [ "$root" = / ]; then
    if ! is_root; then
        echo "error: installing to / needs root (sudo $0 ...), or use --root DIR" >&2
        exit 1
    fi
    R=""
else
    mkdir -p "$root"
    R=$(cd "$root" && pwd)
fi
# The systemd manager of this machine, when we install to it.
live_systemd() { [ -z "$R" ] && [ -d /run/systemd/system ]; }

changes=0
say() { printf '  %s\n' "$*"; }
changed() { changes=$((changes + 1)); say "$*"; }

# ---------------------------------------------------------------- the user

# The passwd and group files the user lives in: the host's, or the image's.
passwd_file() { echo "$R/etc/passwd"; }
user_db_available() { [ -z "$R" ] || [ -f "$R/etc/passwd" ]; }

# Prints "uid:gid" of the testarena user, or nothing.
user_ids() {
    user_db_available || return 0
    awk -F: -v u="$USER_NAME" '$1 == u { print $3 ":" $4 }' "$(passwd_file)"
}

ensure_user() {
    if ! user_db_available; then
        say "no $R/etc/passwd: user $USER_NAME not created, files keep the installing user's ownership"
        return
    fi
    [ -n "$(user_ids)" ] && return
    if ! is_root; then
        say "not root: user $USER_NAME not created"
        return
    fi
    local prefix=() group=(--user-group)
    [ -n "$R" ] && prefix=(--prefix "$R")
    # A group left behind by an earlier install is reused.
    if awk -F: -v g="$USER_NAME" '$1 == g { found = 1 } END { exit !found }' "$R/etc/group"; then
        group=(--gid "$USER_NAME")
    fi
    useradd "${prefix[@]}" --system "${group[@]}" --home-dir /testarena --no-create-home \
        --shell /usr/sbin/nologin --comment "TestArena" "$USER_NAME"
    changed "created system user $USER_NAME ($(user_ids))"
}

remove_user() {
    user_db_available && [ -n "$(user_ids)" ] && is_root || return 0
    local prefix=()
    [ -n "$R" ] && prefix=(--prefix "$R")
    userdel "${prefix[@]}" "$USER_NAME"
    changed "removed user $USER_NAME"
    if awk -F: -v g="$USER_NAME" '$1 == g { found = 1 } END { exit !found }' "$R/etc/group"; then
        groupdel "${prefix[@]}" "$USER_NAME"
    fi
}

# "uid:gid" for files owned by root and readable by the service's group,
# and for the service's own files; empty when ownership is not ours to set.
root_owner() {
    if is_root; then echo 0:0; fi
}
group_owner() {
    local ids
    ids=$(user_ids)
    if is_root && [ -n "$ids" ]; then echo "0:${ids#*:}"; fi
}
service_owner() {
    if is_root; then user_ids; fi
}

# -------------------------------------------------------- file primitives

# Sets mode and (when given) owner of PATH, only when they differ.
fix_attrs() {
    local path=$1 mode=$2 owner=${3:-}
    if [ "$(stat -c %a "$path")" != "$mode" ]; then
        chmod "$mode" "$path"
        changed "mode $mode $path"
    fi
    if [ -n "$owner" ] && [ "$(stat -c %u:%g "$path")" != "$owner" ]; then
        chown "$owner" "$path"
        changed "owner $owner $path"
    fi
}

# Makes directory PATH with MODE and OWNER.
dir() {
    local path=$R$1 mode=$2 owner=${3:-}
    if [ ! -d "$path" ]; then
        mkdir -p "$path"
        changed "created $path/"
    fi
    fix_attrs "$path" "$mode" "$owner"
}

# Installs file SRC as DEST (under the root) unless it is there already,
# identical. The old file is replaced, not written over, so a running
# binary is never modified in place.
put() {
    local src=$1 dest=$R$2 mode=$3 owner=${4:-}
    if [ -f "$dest" ] && cmp -s "$src" "$dest"; then
        fix_attrs "$dest" "$mode" "$owner"
        return
    fi
    local tmp
    tmp=$(mktemp "$(dirname "$dest")/.install.XXXXXX")
    cp "$src" "$tmp"
    chmod "$mode" "$tmp"
    [ -n "$owner" ] && chown "$owner" "$tmp"
    mv -f "$tmp" "$dest"
    changed "installed $dest"
}

# Installs SRC as DEST only when DEST does not exist: configuration that
# the operator owns from then on.
put_once() {
    local src=$1 dest=$R$2 mode=$3 owner=${4:-}
    if [ -e "$dest" ]; then
        if ! cmp -s "$src" "$dest"; then
            say "kept $dest (yours; the shipped version is $R/usr/share/doc/testarena/examples/$(basename "$src"))"
        fi
        fix_attrs "$dest" "$mode" "$owner"
        return
    fi
    put "$src" "$2" "$mode" "$owner"
}

# Makes DEST (under the root) hold exactly the files of directory SRC.
sync_tree() {
    local src=$1 dest=$2 mode_dir=$3 mode_file=$4 owner=${5:-} rel
    dir "$dest" "$mode_dir" "$owner"
    while IFS= read -r -d '' rel; do
        rel=${rel#./}
        if [ -d "$src/$rel" ]; then
            dir "$dest/$rel" "$mode_dir" "$owner"
        else
            put "$src/$rel" "$dest/$rel" "$mode_file" "$owner"
        fi
    done < <(cd "$src" && find . -mindepth 1 \( -type d -o -type f \) -print0 | sort -z)
    # What an earlier release shipped and this one does not.
    while IFS= read -r -d '' rel; do
        rel=${rel#./}
        if [ ! -e "$src/$rel" ]; then
            rm -rf -- "$R$dest/${rel:?}"
            changed "removed $R$dest/$rel"
        fi
    done < <(cd "$R$dest" && find . -mindepth 1 -depth -print0)
}

remove() {
    local path
    for path in "$@"; do
        if [ -e "$R$path" ] || [ -L "$R$path" ]; then
            rm -rf -- "$R${path:?}"
            changed "removed $R$path"
        fi
    done
}

# ------------------------------------------------------------------ install

write_env_example() {
    cat <<'ENV'
# Environment of testarena-app and testarena-worker (EnvironmentFile= in both
# units): secrets and overrides, KEY=value per line. 0640 root:testarena.
# The variable a repository's token_env names, e.g.:
#GITEA_TOKEN=
# Log filter:
#RUST_LOG=info
# The esp32 target's ESP-IDF tools (docs/ESP32.md):
#IDF_TOOLS_PATH=/opt/espressif
ENV
}

install_all() {
    local bin missing=()
    for bin in "${BINARIES[@]}"; do
        [ -x "$from/$bin" ] || missing+=("$from/$bin")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "error: missing ${missing[*]}" >&2
        echo "       build first: cargo build --release --locked --workspace --bins" >&2
        exit 1
    fi
    echo "==> installing TestArena into ${R:-/}"

    ensure_user
    local root_ids group_ids service_ids
    root_ids=$(root_owner)
    group_ids=$(group_owner)
    service_ids=$(service_owner)

    # The home: database, logs, workspaces, git cache. Others may not look in.
    dir /testarena 750 "$service_ids"

    dir /usr/local/bin 755
    for bin in "${BINARIES[@]}"; do
        put "$from/$bin" "/usr/local/bin/$bin" 755 "$root_ids"
    done
    for bin in "${OPTIONAL_BINARIES[@]}"; do
        if [ -x "$from/$bin" ]; then
            put "$from/$bin" "/usr/local/bin/$bin" 755 "$root_ids"
        fi
    done

    put "$repo/deploy/prune-queues.sh" /usr/local/bin/testarena-prune 755 "$root_ids"

    dir /usr/share/testarena 755 "$root_ids"
    sync_tree "$repo/static" /usr/share/testarena/static 755 644 "$root_ids"

    dir /usr/share/doc/testarena 755 "$root_ids"
    put "$repo/docs/OPERATIONS.md" /usr/share/doc/testarena/OPERATIONS.md 644 "$root_ids"
    dir /usr/share/doc/testarena/examples 755 "$root_ids"
    put "$repo/deploy/config.example.toml" /usr/share/doc/testarena/examples/config.example.toml 644 "$root_ids"
    put "$repo/deploy/nginx/testarena.conf" /usr/share/doc/testarena/examples/testarena.conf 644 "$root_ids"

    # Configuration: root's, readable by the service's group only.
    dir /etc/testarena 750 "$group_ids"
    put_once "$repo/deploy/config.example.toml" /etc/testarena/config.toml 640 "$group_ids"
    if [ ! -e "$R/etc/testarena/env" ]; then
        local env_tmp
        env_tmp=$(mktemp)
        write_env_example > "$env_tmp"
        put "$env_tmp" /etc/testarena/env 640 "$group_ids"
        rm -f "$env_tmp"
    else
        fix_attrs "$R/etc/testarena/env" 640 "$group_ids"
    fi

    dir /usr/local/lib/systemd/system 755
    local unit
    for unit in "${UNITS[@]}"; do
        put "$repo/deploy/systemd/$unit" "/usr/local/lib/systemd/system/$unit" 644 "$root_ids"
    done
    if $boards; then
        dir /etc/systemd/system/testarena-worker.service.d 755
        put "$repo/deploy/systemd/testarena-worker.service.d/boards.conf" \
            /etc/systemd/system/testarena-worker.service.d/boards.conf 644 "$root_ids"
    else
        say "boards on USB serial ports: run again with --boards for the worker's drop-in (docs/OPERATIONS.md section 8)"
    fi

    dir /etc/nginx/sites-available 755
    put_once "$repo/deploy/nginx/testarena.conf" /etc/nginx/sites-available/testarena.conf 644 "$root_ids"

    # Does the config (new or kept) still parse with these binaries?
    local check
    if ! check=$(RUST_BACKTRACE=0 RUST_LIB_BACKTRACE=0 "$from/testarena-app" --config "$R/etc/testarena/config.toml" check-config 2>&1 >/dev/null); then
        say "WARNING: $R/etc/testarena/config.toml does not pass check-config:"
        say "$check"
    fi

    if live_systemd && [ $changes -gt 0 ]; then
        systemctl daemon-reload
    fi
    echo "==> $changes change(s)"
    if [ -z "$R" ] && [ $changes -gt 0 ]; then
        cat <<'NEXT'

Next steps (docs/OPERATIONS.md):
  1. Edit /etc/testarena/config.toml ([[repos]], targets), then:
       sudo -u testarena testarena-app check-config
  2. Start the app (it migrates the database) and create the first admin:
       systemctl enable --now testarena-app
       sudo -u testarena testarena-app user add admin --admin --password-stdin
  3. Start the worker:  systemctl enable --now testarena-worker
  4. nginx: set server_name and the certificate in
     /etc/nginx/sites-available/testarena.conf, then
       ln -s ../sites-available/testarena.conf /etc/nginx/sites-enabled/
       nginx -t && systemctl reload nginx
  Upgrading? systemctl restart testarena-app testarena-worker
NEXT
    fi
}

# ---------------------------------------------------------------- uninstall

uninstall_all() {
    echo "==> removing TestArena from ${R:-/}"
    local unit bin
    if live_systemd; then
        for unit in testarena-worker.service testarena-app.service; do
            if systemctl is-enabled --quiet "$unit" 2>/dev/null \
                || systemctl is-active --quiet "$unit" 2>/dev/null; then
                systemctl disable --now "$unit"
                changed "stopped and disabled $unit"
            fi
        done
    fi
    for unit in "${UNITS[@]}"; do
        remove "/usr/local/lib/systemd/system/$unit"
    done
    for bin in "${BINARIES[@]}" "${OPTIONAL_BINARIES[@]}" testarena-prune; do
        remove "/usr/local/bin/$bin"
    done
    remove /usr/share/testarena /usr/share/doc/testarena
    # A site whose files are gone must not stay enabled.
    if [ -L "$R/etc/nginx/sites-enabled/testarena.conf" ]; then
        remove /etc/nginx/sites-enabled/testarena.conf
        say "reload nginx: nginx -t && systemctl reload nginx"
    fi
    if $purge; then
        remove /etc/nginx/sites-available/testarena.conf /etc/testarena /testarena
        remove_user
    else
        local kept=()
        for path in /testarena /etc/testarena /etc/nginx/sites-available/testarena.conf; do
            [ -e "$R$path" ] && kept+=("$R$path")
        done
        [ ${#kept[@]} -gt 0 ] && say "kept ${kept[*]} (remove with --uninstall --purge)"
        user_db_available && [ -n "$(user_ids)" ] && say "kept user $USER_NAME"
    fi
    if live_systemd && [ $changes -gt 0 ]; then
        systemctl daemon-reload
    fi
    echo "==> $changes change(s)"
}

if [ "$mode" = install ]; then
    install_all
else
    uninstall_all
fi
