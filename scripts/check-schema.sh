#!/usr/bin/env bash
# Fails when crates/testarena-domain/src/schema.rs is not what
# `diesel print-schema` generates from the migrations.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
ensure_cargo

if ! command -v diesel >/dev/null 2>&1; then
    echo "installing diesel_cli (sqlite only, bundled SQLite)"
    cargo install diesel_cli --version '^2.3' --no-default-features --features sqlite-bundled --locked --quiet
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
crate=crates/testarena-domain
db="$tmp/schema.db"
# A config without print_schema.file, so that `migration run` does not
# rewrite the committed file before we compare it.
printf '[print_schema]\n' > "$tmp/diesel.toml"
diesel migration run --database-url "$db" --migration-dir "$crate/migrations/sqlite" \
    --config-file "$tmp/diesel.toml" >/dev/null
diesel print-schema --database-url "$db" --config-file "$tmp/diesel.toml" > "$tmp/schema.rs"
if ! diff -u "$crate/src/schema.rs" "$tmp/schema.rs"; then
    echo "error: $crate/src/schema.rs is stale; regenerate it with:" >&2
    echo "  (cd $crate && diesel migration run --database-url /tmp/x.db)   # diesel.toml writes src/schema.rs" >&2
    exit 1
fi
echo "schema.rs is up to date"
