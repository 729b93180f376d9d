# Shared helpers for TestArena's scripts. Source it; don't run it.
# shellcheck shell=bash

# Runs a command as root: directly when we are root, else through sudo.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        echo "error: need root (or sudo) to run: $*" >&2
        return 1
    fi
}

# Installs the Debian packages that are not installed yet; does nothing
# (and needs no root) when all are present.
ensure_packages() {
    local missing=() pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "==> installing ${missing[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# Makes sure cargo is on PATH.
ensure_cargo() {
    if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
        export PATH="$HOME/.cargo/bin:$PATH"
    fi
    command -v cargo >/dev/null 2>&1 || {
        echo "error: cargo not found; install a Rust toolchain (rustup) first" >&2
        return 1
    }
}

# Packages the build needs: a C compiler, pkg-config, OpenSSL headers
# (git2's HTTPS and SSH transports) and libpq (Diesel's PostgreSQL
# backend: both binaries link it, even on a SQLite-only host). SQLite is
# compiled in.
# shellcheck disable=SC2034 # used by the scripts that source this file
BUILD_PACKAGES=(build-essential pkg-config libssl-dev libpq-dev git)
# The PostgreSQL server the tests start throwaway clusters of (initdb,
# pg_ctl under /usr/lib/postgresql/<version>/bin).
# shellcheck disable=SC2034
POSTGRES_PACKAGES=(postgresql)
# What running firmware needs: the lx106 cross-compiler and QEMU for Xtensa
# (docs/LX106.md), and python3 for the board simulator
# (tests/fixtures/board-sim). The worker's serial code is nix's termios:
# no libudev or other system library to build it.
# shellcheck disable=SC2034
FIRMWARE_PACKAGES=(make gcc-xtensa-lx106 binutils-xtensa-lx106 qemu-system-misc python3)
