#!/usr/bin/env bash
# TestArena's benchmarks (docs/PERFORMANCE.md): builds the release
# binaries, then testarena-bench starts a real app and worker on a temp
# home, runs every scenario over loopback, prints each figure with its
# target and whether it is met, and writes target/bench/results.json.
# Arguments go to testarena-bench (e.g. --only api,sse --api-runs 1 --keep;
# --help lists every size). Targets are reported, never asserted: the
# script fails only when a benchmark cannot run.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

ensure_cargo
ensure_packages "${BUILD_PACKAGES[@]}"

started=$SECONDS
printf '==> cargo build --release --workspace --bins\n'
cargo build --release --workspace --bins --locked
built=$SECONDS
printf '    built in %d s\n' $((built - started))

printf '\n==> testarena-bench (%s cores, %s, load average %s)\n' \
    "$(nproc)" "$(uname -r)" "$(cut -d' ' -f1-3 /proc/loadavg)"
target/release/testarena-bench --out target/bench/results.json "$@"
printf '\nbench.sh: %d s in all (%d s building, %d s measuring)\n' \
    $((SECONDS - started)) $((built - started)) $((SECONDS - built))
