#!/usr/bin/env bash
# Runs every check of TestArena: installs what the tests need, then
# formatting, lints, the schema check and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

ensure_cargo
ensure_packages "${BUILD_PACKAGES[@]}" "${FIRMWARE_PACKAGES[@]}" shellcheck \
    "${POSTGRES_PACKAGES[@]}" nginx systemd openssl curl sqlite3 jq chromium python3-venv util-linux iproute2 tini
# The browser tests run on Node 20 or later; Debian's own nodejs is older,
# so an installed one is kept and Debian's is only a fallback.
command -v node >/dev/null 2>&1 || ensure_packages nodejs npm

step() { printf '\n==> %s\n' "$*"; }

step "shellcheck"
shellcheck -x scripts/*.sh .ci/run tests/fixtures/*.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "schema.rs matches the migrations"
bash scripts/check-schema.sh

step "cargo build (the end-to-end tests start the real binaries)"
cargo build --workspace --bins --locked

step "cargo test (tests/integration: the e2e, CLI and fault suites, with real daemons)"
cargo test --workspace --locked

step "the store, API and end-to-end suites again, on PostgreSQL (a throwaway cluster per test process)"
# `--workspace` keeps the features of the builds above: selecting single
# packages would resolve them anew and rebuild the dependencies.
export TESTARENA_TEST_BACKEND=postgres
cargo test --locked --workspace --test store --test history --test api
cargo test --locked --workspace --test integration e2e::
unset TESTARENA_TEST_BACKEND

step "benchmark program with tiny sizes (scripts/bench.sh measures; speed is never asserted)"
target/debug/testarena-bench --smoke --out target/bench/smoke.json

step "generated requests against the real app (schemathesis)"
bash scripts/schemathesis.sh

step "deployment: units, nginx site, install.sh, backup and restore"
bash scripts/deploy-test.sh

step "containers: the image and compose file with rootful Podman (the debug binaries above)"
bash scripts/container-test.sh

step "dashboard in headless Chromium"
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error && node --test)
