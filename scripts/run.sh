#!/usr/bin/env bash
# Runs TestArena locally: builds, starts testarena-app and testarena-worker
# on SQLite with the bundled example firmware and prints the dashboard URL.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -d crates/testarena-api ] || [ ! -d crates/testarena-worker ]; then
    echo "TestArena's daemons (testarena-app, testarena-worker) are not built yet:" >&2
    echo "only the domain crate exists so far. Run scripts/test.sh to check it." >&2
    exit 1
fi
