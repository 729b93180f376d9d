//! `testarena-app copy-database`: moves a SQLite farm onto PostgreSQL
//! (DESIGN section 13, OPERATIONS section 12). Every table's rows, ids
//! kept, and the log files of every queue under `{home}/queues/<id>/` as
//! `log_chunks`, into an empty PostgreSQL database, then a count of every
//! table and of the log bytes on both sides.
//!
//! The target is migrated first and must hold no row. The copy is one
//! transaction on the target, so a failure (or a count that differs)
//! leaves it migrated and empty; the source is read in one read
//! transaction, so its tables are one snapshot even if something writes
//! meanwhile (stop the app and the workers anyway: the log files are not
//! in that snapshot). Rows stream from SQLite [`BATCH`] at a time into
//! PostgreSQL's `COPY ... FROM STDIN (FORMAT binary)`, so a table of
//! millions of rows never sits in memory.

use std::fmt::Write as _;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, bail};
use diesel::connection::{DefaultLoadingMode, SimpleConnection as _};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use testarena_domain::db::{self, DbConnection, Location, PgConnection, SqliteConnection};
use testarena_domain::paths::Home;
use testarena_domain::schema;
use testarena_domain::store::logs::MAX_CHUNK;

/// Rows read from the source and written to the target at once.
pub const BATCH: usize = 5000;
/// Log chunks written at once (at most 4 MiB).
const CHUNK_BATCH: usize = 64;
/// How often a long table reports its progress.
const EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// What `copy-database` is told.
#[derive(Debug, Clone)]
pub struct Args {
    /// The SQLite database (a path or `sqlite://` URL).
    pub from: Location,
    /// The PostgreSQL database.
    pub to: Location,
    /// The source farm's home: its logs are under `queues/`.
    pub home: PathBuf,
}

type Dt = chrono::NaiveDateTime;
type ODt = Option<chrono::NaiveDateTime>;
type OS = Option<String>;
type OI = Option<i32>;

type CopyFn = fn(&mut SqliteConnection, &mut PgConnection, &mut Progress) -> QueryResult<u64>;

/// One module per table: its row (every column, as `schema.rs` has it) and
/// the function that copies the table in primary-key order. The order of
/// the list is the order of the copy, parents before children.
macro_rules! tables {
    ($($table:ident { $($col:ident: $ty:ty),+ $(,)? })+) => {
        $(mod $table {
            use super::*;

            #[derive(Queryable, Selectable, Insertable)]
            #[diesel(table_name = schema::$table, check_for_backend(diesel::sqlite::Sqlite))]
            // A NULL stays NULL: COPY writes every column as it is.
            #[diesel(treat_none_as_default_value = false)]
            pub(super) struct Row { $(pub(super) $col: $ty),+ }

            pub(super) fn copy(
                src: &mut SqliteConnection,
                dst: &mut PgConnection,
                progress: &mut Progress,
            ) -> QueryResult<u64> {
                use diesel::Table as _;
                let mut rows = schema::$table::table
                    .order(schema::$table::table.primary_key())
                    .select(Row::as_select())
                    .load_iter::<Row, DefaultLoadingMode>(src)?
                    // Asked again after its end, SQLite's statement starts over.
                    .fuse();
                let mut copied = 0;
                loop {
                    let batch = rows.by_ref().take(BATCH).collect::<QueryResult<Vec<_>>>()?;
                    if batch.is_empty() {
                        break;
                    }
                    copied += diesel::copy_from(schema::$table::table)
                        .from_insertable(batch)
                        .execute(dst)? as u64;
                    progress.tick(stringify!($table), copied);
                }
                Ok(copied)
            }
        })+

        /// The tables copied, in the order copied.
        const TABLES: &[(&str, CopyFn)] = &[$((stringify!($table), $table::copy as CopyFn)),+];
    };
}

tables! {
    users { id: i32, username: String, password_hash: String, is_admin: bool, disabled: bool, created_at: Dt }
    api_tokens {
        id: i32, user_id: i32, name: String, token_hash: String, prefix: String, created_at: Dt,
        last_used_at: ODt,
    }
    queues {
        seq: i32, id: String, status: String, status_reason: OS, repo: String, branch: String,
        commit_sha: OS, target: String, owner: String, priority: i32, timeout_s: OI, created_at: Dt,
        started_at: ODt, finished_at: ODt, worker_id: OS, abort_reason: OS, pgid: OI, board: OS,
        board_tags: OS, ran_on: OS, attempt: i32, no_cache: bool, triggered_by: OS,
    }
    tasks {
        id: String, queue_id: String, position: i32, scenario: String, status: String,
        status_reason: OS, passed: i32, failed: i32, skipped: i32, started_at: ODt,
        finished_at: ODt, only: OS,
    }
    test_cases {
        id: i32, task_id: String, name: String, status: String, duration_ms: OI, message: OS,
        repo: OS, scenario: OS, branch: OS, target: OS, commit_sha: OS, ran_on: OS, finished_at: ODt,
    }
    workers { id: String, slots: i32, version: String, pid: i32, started_at: Dt, last_seen: Dt }
    boards {
        id: String, worker_id: String, target: String, tags: String, serial: String, baud: i32,
        status: String, health: String, queue_id: OS, leased_at: ODt, heartbeat_at: Dt,
        last_health_at: ODt, last_health_queue: OS, health_queue: OS, health_repo: OS,
        health_branch: OS, health_scenario: OS, health_every_h: OI, note: String,
        maintenance: bool, flashes: i32, faults: i32, registered_at: Dt,
    }
    attempts {
        id: i32, queue_id: String, attempt: i32, worker: OS, ran_on: OS, started_at: ODt,
        finished_at: Dt, status: String, reason: OS, results: String,
    }
    hook_deliveries {
        id: i32, repo: String, delivery_id: String, forge: String, event: String, branch: OS,
        commit_sha: OS, pusher: OS, queues: String, outcome: String, reason: OS, received_at: Dt,
    }
    deliveries {
        id: i32, kind: String, event: String, queue_id: OS, hook_id: OI, forge: OS, auth_env: OS,
        context: OS, target_url: String, payload: String, state: String, attempts: i32,
        last_code: OI, last_answer: OS, last_error: OS, next_try_at: Dt, created_at: Dt,
        updated_at: Dt,
    }
    delivery_events { id: i32, event: String, subject: String, status: String, at: Dt }
    test_series {
        repo: String, scenario: String, name: String, branch: String, target: String,
        verdicts: String, durations: String, last_id: i32, last_at: Dt, last_status: String,
        last_fail_id: OI, mixed_at: ODt,
    }
    test_days {
        repo: String, day: String, scenario: String, name: String, branch: String, target: String,
        runs: i32, passed: i32, failed: i32,
    }
}

/// The table the logs go to: filled from the files, not from the source's
/// (empty on SQLite) table of the same name.
const LOG_TABLE: &str = "log_chunks";

#[derive(Insertable)]
#[diesel(table_name = schema::log_chunks, treat_none_as_default_value = false)]
struct NewChunk {
    queue_id: String,
    path: String,
    start: i64,
    len: i64,
    data: Vec<u8>,
}

/// The progress lines on stderr.
#[derive(Debug)]
struct Progress {
    started: Instant,
    last: Instant,
}

impl Progress {
    fn new() -> Self {
        let now = Instant::now();
        Self {
            started: now,
            last: now,
        }
    }

    /// A line every [`EVERY`] while a table is copied.
    fn tick(&mut self, what: &str, done: u64) {
        if self.last.elapsed() >= EVERY {
            self.last = Instant::now();
            eprintln!("  {what}: {done} so far");
        }
    }

    fn done(&mut self, what: &str, count: u64, since: Instant) {
        self.last = Instant::now();
        let secs = since.elapsed().as_secs_f64();
        let rate = if secs > 0.0 { count as f64 / secs } else { 0.0 };
        eprintln!(
            "copied {what}: {count} in {secs:.1} s ({rate:.0}/s; {:.1} s in all)",
            self.started.elapsed().as_secs_f64()
        );
    }
}

/// One line of the closing table.
#[derive(Debug)]
struct Count {
    table: String,
    source: i64,
    target: i64,
}

/// Copies `args.from` into `args.to`; prints the table of counts on
/// stdout and progress on stderr.
pub fn run(args: &Args) -> anyhow::Result<String> {
    let Location::Sqlite(path) = &args.from else {
        bail!(
            "copy-database copies from a SQLite file, not {} (use pg_dump between PostgreSQL databases)",
            args.from
        );
    };
    let Location::Postgres(url) = &args.to else {
        bail!("copy-database copies into PostgreSQL: --to must be a postgres:// URL");
    };
    let mut src = open_source(path)?;
    eprintln!(
        "source {} (schema {})",
        path.display(),
        db::binary_schema_version()
    );

    // libpq's error may quote the password: scrub it before anything shows it.
    let mut pg = PgConnection::establish(&url.connect_string()).map_err(|e| {
        anyhow::anyhow!("cannot open database {url}: {}", url.scrub(&e.to_string()))
    })?;
    pg.batch_execute("SET TIME ZONE 'UTC'")?;
    // Refused before migrating: a non-empty target is left as it was.
    refuse_rows(&mut pg, &args.to)?;
    let mut target = DbConnection::Postgresql(pg);
    let applied = db::run_migrations(&mut target)?;
    db::ensure_schema(&mut target)?;
    eprintln!("target {url}: {applied} migration(s) applied");
    let DbConnection::Postgresql(mut dst) = target else {
        unreachable!("opened as PostgreSQL above")
    };

    let mut progress = Progress::new();
    let home = Home::new(&args.home);
    let counts = dst
        .transaction(|dst| {
            src.transaction(|src| copy_all(src, dst, &home, &args.to, &mut progress))
        })
        .context("the copy was rolled back: the target holds no rows (it stays migrated)")?;
    let mut out = format!("{:<16} {:>12} {:>12}\n", "table", "source", "target");
    for c in &counts {
        let _ = writeln!(out, "{:<16} {:>12} {:>12}", c.table, c.source, c.target);
    }
    let _ = writeln!(out, "copied {} into {url}", path.display());
    Ok(out)
}

/// The source: an existing file (never made here) at this binary's schema.
fn open_source(path: &Path) -> anyhow::Result<SqliteConnection> {
    if !path.is_file() {
        bail!("no SQLite database at {}", path.display());
    }
    let conn = SqliteConnection::establish(&path.to_string_lossy())
        .with_context(|| format!("cannot open {}", path.display()))?;
    let mut conn = DbConnection::Sqlite(conn);
    // Wait for a writer instead of failing on a busy file.
    conn.batch_execute(&format!(
        "PRAGMA busy_timeout = {}",
        db::BUSY_TIMEOUT.as_millis()
    ))?;
    db::ensure_schema(&mut conn).with_context(|| format!("the source {}", path.display()))?;
    let DbConnection::Sqlite(conn) = conn else {
        unreachable!("opened as SQLite above")
    };
    Ok(conn)
}

#[derive(QueryableByName)]
struct N {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

/// Every table copied into, the logs' included.
fn all_tables() -> impl Iterator<Item = &'static str> {
    TABLES.iter().map(|(t, _)| *t).chain([LOG_TABLE])
}

/// Fails naming the first of our tables that holds a row (of those that
/// exist: a database never migrated has none).
fn refuse_rows(pg: &mut PgConnection, to: &Location) -> anyhow::Result<()> {
    let existing: Vec<String> = diesel::sql_query(
        "SELECT table_name::text AS name FROM information_schema.tables \
         WHERE table_schema = current_schema()",
    )
    .load::<Name>(pg)?
    .into_iter()
    .map(|r| r.name)
    .collect();
    for table in all_tables().filter(|t| existing.iter().any(|e| e == t)) {
        let any = diesel::sql_query(format!(
            "SELECT count(*) AS n FROM (SELECT 1 FROM {table} LIMIT 1) t"
        ))
        .get_result::<N>(pg)?;
        if any.n > 0 {
            bail!(
                "the target {to} is not empty: table {table} holds rows; copy-database copies into an empty database only (nothing was written)"
            );
        }
    }
    Ok(())
}

/// The whole copy, inside the target's transaction and the source's read
/// transaction; an `Err` rolls the target back to empty.
fn copy_all(
    src: &mut SqliteConnection,
    dst: &mut PgConnection,
    home: &Home,
    to: &Location,
    progress: &mut Progress,
) -> anyhow::Result<Vec<Count>> {
    // The copy writes each table's rows as they are in the source, the
    // history tables (test_series, test_days) included, so no trigger may
    // run: on test_cases they would recompute the history row by row
    // (slow, and not to the same rows: a case without identity would get
    // today's finished_at, and `mixed_at` follows PostgreSQL's visibility
    // rules, not SQLite's), and on queues they would send notifications.
    // `session_replication_role = replica` would need a superuser;
    // `DISABLE TRIGGER USER` needs only the owner, which migrated the
    // tables above. It is transactional: the ACCESS EXCLUSIVE lock it takes
    // keeps every other session out until commit, the triggers are enabled
    // again before that, and a rollback undoes it. Foreign keys are system
    // triggers and still checked.
    for table in all_tables() {
        dst.batch_execute(&format!("ALTER TABLE {table} DISABLE TRIGGER USER"))
            .with_context(|| format!("cannot disable the triggers of {table} (the target's tables must belong to the user copying)"))?;
    }
    // Again under the locks: nothing slipped in since the first look.
    refuse_rows(dst, to)?;

    let mut counts = Vec::new();
    for (table, copy) in TABLES {
        let since = Instant::now();
        let copied = copy(src, dst, progress).with_context(|| format!("copying {table}"))?;
        progress.done(table, copied, since);
        counts.push(Count {
            table: (*table).to_owned(),
            source: count(table).get_result::<N>(src)?.n,
            target: count(table).get_result::<N>(dst)?.n,
        });
    }

    let since = Instant::now();
    let logs = copy_logs(src, dst, home, progress)?;
    progress.done("log bytes", logs.bytes, since);
    eprintln!(
        "{} log file(s) of {} queue folder(s) in {} chunk(s)",
        logs.files, logs.folders, logs.chunks
    );

    for table in all_tables() {
        dst.batch_execute(&format!("ALTER TABLE {table} ENABLE TRIGGER USER"))?;
    }
    advance_identities(src, dst)?;

    let stored = diesel::sql_query(
        "SELECT (SELECT count(*) FROM (SELECT DISTINCT queue_id, path FROM log_chunks) f) AS files, \
         coalesce(sum(len), 0)::bigint AS bytes, \
         coalesce(sum(octet_length(data)), 0)::bigint AS data FROM log_chunks",
    )
    .get_result::<StoredLogs>(dst)?;
    for (table, source, target) in [
        ("log files", logs.files, stored.files),
        ("log bytes", logs.bytes, stored.bytes),
        // What the chunks hold, not what they say they hold.
        ("log data", logs.bytes, stored.data),
    ] {
        counts.push(Count {
            table: table.to_owned(),
            source: source as i64,
            target,
        });
    }
    let wrong: Vec<String> = counts
        .iter()
        .filter(|c| c.source != c.target)
        .map(|c| format!("{} (source {}, target {})", c.table, c.source, c.target))
        .collect();
    if !wrong.is_empty() {
        bail!(
            "the copy does not match the source, so it was rolled back: {}",
            wrong.join(", ")
        );
    }
    Ok(counts)
}

#[derive(QueryableByName)]
struct StoredLogs {
    #[diesel(sql_type = BigInt)]
    files: i64,
    #[diesel(sql_type = BigInt)]
    bytes: i64,
    #[diesel(sql_type = BigInt)]
    data: i64,
}

/// Counts the rows of `table` (one of [`TABLES`]: a name of ours, not input).
fn count(table: &str) -> diesel::query_builder::SqlQuery {
    diesel::sql_query(format!("SELECT count(*) AS n FROM {table}"))
}

/// Sets every identity of the target past the ids copied, and past the
/// ids SQLite handed out and lost with their rows (`sqlite_sequence`: an
/// AUTOINCREMENT id is never used twice, so neither may PostgreSQL's).
fn advance_identities(src: &mut SqliteConnection, dst: &mut PgConnection) -> anyhow::Result<()> {
    #[derive(QueryableByName)]
    struct Identity {
        #[diesel(sql_type = Text)]
        table_name: String,
        #[diesel(sql_type = Text)]
        column_name: String,
    }
    #[derive(QueryableByName)]
    struct Seq {
        #[diesel(sql_type = Text)]
        name: String,
        #[diesel(sql_type = BigInt)]
        seq: i64,
    }
    let identities = diesel::sql_query(
        "SELECT table_name::text AS table_name, column_name::text AS column_name \
         FROM information_schema.columns \
         WHERE table_schema = current_schema() AND is_identity = 'YES'",
    )
    .load::<Identity>(dst)?;
    let used = diesel::sql_query("SELECT name, seq FROM sqlite_sequence").load::<Seq>(src)?;
    for Identity {
        table_name,
        column_name,
    } in identities
    {
        let lost = used
            .iter()
            .find(|s| s.name == table_name)
            .map_or(0, |s| s.seq);
        // setval(.., NULL) is NULL and changes nothing: an empty table
        // keeps starting at 1.
        diesel::sql_query(format!(
            "SELECT setval(pg_get_serial_sequence('{table_name}', '{column_name}'), \
             nullif(GREATEST(max({column_name})::bigint, $1), 0)) FROM {table_name}"
        ))
        .bind::<BigInt, _>(lost)
        .execute(dst)
        .with_context(|| format!("advancing the identity {table_name}.{column_name}"))?;
    }
    Ok(())
}

/// Every regular file under `dir` as a `/`-separated path relative to it,
/// sorted: what the app lists (`logs::files`), symlinks and names that
/// are not UTF-8 left out as there.
fn walk(dir: &Path) -> Vec<(String, PathBuf, u64)> {
    testarena_domain::paths::queue_files(dir)
        .into_iter()
        .map(|(rel, meta)| {
            let file = dir.join(&rel);
            (rel, file, meta.len())
        })
        .collect()
}

/// What the logs came to.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct LogTotals {
    folders: u64,
    files: u64,
    chunks: u64,
    bytes: u64,
}

/// The files of every queue's folder as chunks of [`MAX_CHUNK`] bytes
/// (an empty file as one empty chunk, so that it is listed as on disk).
fn copy_logs(
    src: &mut SqliteConnection,
    dst: &mut PgConnection,
    home: &Home,
    progress: &mut Progress,
) -> anyhow::Result<LogTotals> {
    let mut totals = LogTotals::default();
    let mut batch = Vec::with_capacity(CHUNK_BATCH);
    let ids = schema::queues::table
        .select(schema::queues::id)
        .order(schema::queues::seq)
        .load_iter::<String, DefaultLoadingMode>(src)?;
    for id in ids {
        let id = id?;
        let dir = home.queue_dir(&id);
        if !dir.is_dir() {
            continue;
        }
        totals.folders += 1;
        for (rel, file, listed) in walk(&dir) {
            let read = copy_file(dst, &id, &rel, &file, &mut batch, &mut totals)
                .with_context(|| format!("copying the log {}", file.display()))?;
            if read != listed {
                bail!(
                    "the log {} changed while it was copied ({listed} bytes listed, {read} read): stop the app and the workers first",
                    file.display()
                );
            }
            totals.files += 1;
            progress.tick("log bytes", totals.bytes);
        }
    }
    flush(dst, &mut batch)?;
    let queues_dir = home.queues_dir();
    match std::fs::read_dir(&queues_dir) {
        Ok(entries) => {
            let on_disk = entries.flatten().filter(|e| e.path().is_dir()).count() as u64;
            if on_disk > totals.folders {
                eprintln!(
                    "{} folder(s) under {} belong to no queue of the database: left out",
                    on_disk - totals.folders,
                    queues_dir.display()
                );
            }
        }
        Err(e) => eprintln!(
            "warning: no logs copied: {}: {e} (is --home the farm's home?)",
            queues_dir.display()
        ),
    }
    Ok(totals)
}

/// Writes the chunks of `batch`, leaving it empty.
fn flush(dst: &mut PgConnection, batch: &mut Vec<NewChunk>) -> QueryResult<()> {
    if !batch.is_empty() {
        diesel::copy_from(schema::log_chunks::table)
            .from_insertable(std::mem::take(batch))
            .execute(dst)?;
    }
    Ok(())
}

/// Reads one file into `batch`, written whenever it is full; returns the
/// bytes read.
fn copy_file(
    dst: &mut PgConnection,
    queue_id: &str,
    rel: &str,
    file: &Path,
    batch: &mut Vec<NewChunk>,
    totals: &mut LogTotals,
) -> anyhow::Result<u64> {
    let mut f = std::fs::File::open(file)?;
    let mut start = 0u64;
    loop {
        let mut data = Vec::with_capacity(MAX_CHUNK);
        (&mut f).take(MAX_CHUNK as u64).read_to_end(&mut data)?;
        let len = data.len() as u64;
        if len == 0 && start > 0 {
            return Ok(start);
        }
        batch.push(NewChunk {
            queue_id: queue_id.to_owned(),
            path: rel.to_owned(),
            start: start as i64,
            len: len as i64,
            data,
        });
        totals.chunks += 1;
        totals.bytes += len;
        start += len;
        if batch.len() >= CHUNK_BATCH {
            flush(dst, batch)?;
        }
        if len < MAX_CHUNK as u64 {
            return Ok(start);
        }
    }
}
