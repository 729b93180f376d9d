#!/usr/bin/env bash
# Fails when crates/testarena-domain/src/schema.rs is not what
# `diesel print-schema` generates from the migrations of either backend:
# migrations/sqlite on a temporary SQLite file, and migrations/postgres on
# a throwaway PostgreSQL cluster (a unix socket in a temporary directory).
# On each backend it also reverts every migration (each down.sql), checks
# that no table is left, and applies them again.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
ensure_cargo
ensure_packages libpq-dev "${POSTGRES_PACKAGES[@]}"

crate=crates/testarena-domain
tmp=$(mktemp -d)
pgdata=$tmp/pg/data
pg_bin=
cleanup() {
    if [ -n "$pg_bin" ] && [ -f "$pgdata/postmaster.pid" ]; then
        as_postgres "$pg_bin/pg_ctl" -D "$pgdata" -m fast -w stop >/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

# Runs a PostgreSQL server program: as `nobody` when we are root (initdb
# refuses root), directly otherwise.
as_postgres() {
    if [ "$(id -u)" -eq 0 ]; then
        setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"
    else
        "$@"
    fi
}

# The directory of initdb and pg_ctl: Debian keeps them off PATH, under
# /usr/lib/postgresql/<version>/bin (the newest one wins).
find_pg_bin() {
    local dir
    dir=$(pg_config --bindir 2>/dev/null || true)
    if [ -n "$dir" ] && [ -x "$dir/initdb" ]; then
        echo "$dir"
        return
    fi
    dir=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin 2>/dev/null | sort -V | tail -n 1)
    if [ -n "$dir" ] && [ -x "$dir/initdb" ]; then
        echo "$dir"
        return
    fi
    echo "error: no PostgreSQL server found (initdb); install the postgresql package" >&2
    return 1
}

# A diesel_cli that speaks both backends. One built without the `postgres`
# feature says so (a panic naming the feature) before it tries to connect.
diesel_has_postgres() {
    local said
    command -v diesel >/dev/null 2>&1 || return 1
    said=$(diesel print-schema --database-url "postgres://nobody@localhost/none?host=$tmp/absent" \
        --config-file "$tmp/diesel.toml" 2>&1 || true)
    ! grep -q "requires the .postgres. feature" <<<"$said"
}

# A config without print_schema.file, so that `migration run` does not
# rewrite the committed file before we compare it.
printf '[print_schema]\n' > "$tmp/diesel.toml"
if ! diesel_has_postgres; then
    echo "installing diesel_cli (SQLite bundled, and PostgreSQL through libpq)"
    cargo install diesel_cli --version '^2.3' --no-default-features \
        --features sqlite-bundled,postgres --locked --force --quiet
    # Ahead of any other diesel on PATH (the one that lacked PostgreSQL).
    export PATH="${CARGO_INSTALL_ROOT:-${CARGO_HOME:-$HOME/.cargo}}/bin:$PATH"
    diesel_has_postgres || {
        echo "error: $(command -v diesel) still lacks PostgreSQL support" >&2
        exit 1
    }
fi

# Diesel's PostgreSQL names for the types schema.rs spells the SQLite way
# (aliases of one another in diesel::sql_types).
normalize_pg_types() {
    sed -E 's/\bInt2\b/SmallInt/g; s/\bBytea\b/Binary/g; s/\bInt4\b/Integer/g; s/\bInt8\b/BigInt/g;
            s/\bFloat4\b/Float/g; s/\bFloat8\b/Double/g'
}

# check <backend> <url> <normalize command...>: migrations run, schema
# compared; all reverted, nothing left; run again, compared again.
check() {
    local backend=$1 url=$2 dir=$crate/migrations/$1 out=$tmp/$1.rs
    shift 2
    local cfg=(--database-url "$url" --config-file "$tmp/diesel.toml")
    diesel migration run "${cfg[@]}" --migration-dir "$dir" >/dev/null
    diesel print-schema "${cfg[@]}" | "$@" > "$out"
    if ! diff -u "$crate/src/schema.rs" "$out"; then
        echo "error: $crate/src/schema.rs is not what $dir makes (diff above)" >&2
        if [ "$backend" = sqlite ]; then
            echo "  regenerate it with: (cd $crate && diesel migration run --database-url /tmp/x.db)   # diesel.toml writes src/schema.rs" >&2
        else
            echo "  make $dir build what migrations/sqlite builds; schema.rs is generated from SQLite" >&2
        fi
        exit 1
    fi
    diesel migration revert --all "${cfg[@]}" --migration-dir "$dir" >/dev/null
    if diesel print-schema "${cfg[@]}" | grep -n 'table!'; then
        echo "error: tables left after reverting every migration of $dir (their down.sql)" >&2
        exit 1
    fi
    diesel migration run "${cfg[@]}" --migration-dir "$dir" >/dev/null
    diesel print-schema "${cfg[@]}" | "$@" > "$out"
    if ! diff -u "$crate/src/schema.rs" "$out"; then
        echo "error: $dir builds another schema after its down.sql and up.sql again" >&2
        exit 1
    fi
    echo "schema.rs is what $dir makes (and its down migrations undo it)"
}

check sqlite "$tmp/schema.db" cat

pg_bin=$(find_pg_bin)
mkdir -p "$tmp/pg/sock"
if [ "$(id -u)" -eq 0 ]; then
    chmod o+x "$tmp"
    chown -R nobody:nogroup "$tmp/pg"
fi
as_postgres "$pg_bin/initdb" -D "$pgdata" -U postgres --auth=trust --no-sync --locale=C \
    --encoding=UTF8 >"$tmp/pg/initdb.log" 2>&1 || {
    cat "$tmp/pg/initdb.log" >&2
    exit 1
}
# Only the socket in our own directory: no TCP port, nothing to collide with.
as_postgres "$pg_bin/pg_ctl" -D "$pgdata" -l "$tmp/pg/server.log" -w -t 60 \
    -o "-k $tmp/pg/sock -p 5432 -c listen_addresses='' -c fsync=off" start >/dev/null || {
    cat "$tmp/pg/server.log" >&2
    exit 1
}
"$pg_bin/createdb" -h "$tmp/pg/sock" -p 5432 -U postgres schema
check postgres "postgres://postgres@localhost/schema?host=$tmp/pg/sock&port=5432" normalize_pg_types
