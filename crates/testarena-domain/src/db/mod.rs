//! The database: one connection type that is SQLite or PostgreSQL, its
//! r2d2 pool, the migrations embedded per backend and the schema version
//! both daemons check before they start (DESIGN section 13).
//!
//! [`DbConnection`] is Diesel's `MultiConnection` over both backends: the
//! store's queries are written once, and the few that must differ (the
//! claim, date arithmetic) match on the variant in the store and nowhere
//! else. [`write`] is how the store opens a read-then-write transaction on
//! either: `BEGIN IMMEDIATE` on SQLite, and on PostgreSQL a transaction
//! that first takes one transaction-scoped advisory lock, so that the
//! store's check-then-write rules (the last admin, an owner's abort, a
//! board's lease) hold on PostgreSQL exactly as under SQLite's single
//! writer.

pub mod listen;
mod location;
mod sqlite;

use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::connection::{AnsiTransactionManager, Connection as _, TransactionManager};
use diesel::migration::MigrationSource;
use diesel::r2d2::{CustomizeConnection, Pool, PooledConnection, R2D2Connection};
use diesel::result::Error as DieselError;
use diesel::{QueryableByName, RunQueryDsl as _};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

pub use diesel::pg::PgConnection;
pub use diesel::sqlite::SqliteConnection;
pub use location::{Location, LocationError, PgUrl};
pub use sqlite::{BUSY_TIMEOUT, BackupInfo, backup};

/// A connection to either backend.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgresql(PgConnection),
    Sqlite(SqliteConnection),
}

impl std::fmt::Debug for DbConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Postgresql(_) => "DbConnection::Postgresql",
            Self::Sqlite(_) => "DbConnection::Sqlite",
        })
    }
}

impl DbConnection {
    /// True on PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        matches!(self, Self::Postgresql(_))
    }
}

/// The SQLite migrations (`crates/testarena-domain/migrations/sqlite`).
pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
/// The PostgreSQL migrations: the same versions, in PostgreSQL's dialect.
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

pub type DbPool = Pool<Manager>;
pub type DbConn = PooledConnection<Manager>;

/// The key of the advisory lock every [`write`] transaction takes on
/// PostgreSQL ("TA" and a counter: any constant no other program uses).
const WRITE_LOCK: i64 = 0x5441_0001;
/// The key of the lock `migrate` holds, so that two apps starting at once
/// do not both migrate.
const MIGRATE_LOCK: i64 = 0x5441_0002;

/// Errors opening, migrating or checking the database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot open database {location}: {message}")]
    Open { location: String, message: String },
    #[error("bad database setting: {0}")]
    Location(#[from] LocationError),
    #[error("database migrations failed: {0}")]
    Migration(String),
    #[error(
        "the database has no TestArena schema yet (this binary's schema is version {binary}); run `testarena-app migrate` first"
    )]
    NoSchema { binary: String },
    #[error(
        "the database schema is version {database}, older than this binary's version {binary}; run `testarena-app migrate` with this binary first"
    )]
    Older { database: String, binary: String },
    #[error(
        "the database schema is version {database}, newer than this binary's version {binary}; upgrade this binary (another host migrated the database)"
    )]
    Newer { database: String, binary: String },
    #[error("backup to {path} failed: {message}")]
    Backup { path: String, message: String },
}

/// How big the pool may grow and how long a new connection may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolOptions {
    pub max_size: u32,
    pub connect_timeout: Duration,
}

impl PoolOptions {
    /// `max_size` connections, the default connect timeout (5 s).
    pub fn sized(max_size: u32) -> Self {
        Self {
            max_size,
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// Makes the pool's connections to one database.
#[derive(Debug)]
pub struct Manager {
    location: Location,
    connect_timeout: Duration,
}

impl r2d2::ManageConnection for Manager {
    type Connection = DbConnection;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<DbConnection, Self::Error> {
        let result = match &self.location {
            Location::Sqlite(path) => {
                SqliteConnection::establish(&path.to_string_lossy()).map(DbConnection::Sqlite)
            }
            Location::Postgres(url) => {
                PgConnection::establish(&connect_string(url, self.connect_timeout))
                    .map(DbConnection::Postgresql)
                    .map_err(|e| scrub_connection_error(url, e))
            }
        };
        result.map_err(diesel::r2d2::Error::ConnectionError)
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), Self::Error> {
        conn.ping().map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        std::thread::panicking() || conn.is_broken()
    }
}

/// The URL libpq gets: with its password, a connect timeout, and TCP
/// keepalives and a user timeout so that a connection across a cut link
/// fails within seconds instead of hanging for TCP's retransmission
/// minutes; each unless the URL sets it.
fn connect_string(url: &PgUrl, timeout: Duration) -> String {
    let mut s = url.connect_string();
    let timeout = format!("{}", timeout.as_secs().max(1));
    let user_timeout = format!("{}", (timeout.parse::<u64>().unwrap_or(5) * 2000).max(5000));
    for (key, value) in [
        ("connect_timeout", timeout.as_str()),
        ("keepalives_idle", "5"),
        ("keepalives_interval", "2"),
        ("keepalives_count", "3"),
        ("tcp_user_timeout", user_timeout.as_str()),
    ] {
        if !s.contains(&format!("{key}=")) {
            s.push(if s.contains('?') { '&' } else { '?' });
            s.push_str(&format!("{key}={value}"));
        }
    }
    s
}

fn scrub_connection_error(url: &PgUrl, e: diesel::ConnectionError) -> diesel::ConnectionError {
    match e {
        diesel::ConnectionError::BadConnection(m) => {
            diesel::ConnectionError::BadConnection(url.scrub(&m))
        }
        other => other,
    }
}

/// Per-connection settings: SQLite's pragmas; UTC on PostgreSQL.
#[derive(Debug, Clone, Copy)]
struct Customize;

impl CustomizeConnection<DbConnection, diesel::r2d2::Error> for Customize {
    fn on_acquire(&self, conn: &mut DbConnection) -> Result<(), diesel::r2d2::Error> {
        use diesel::connection::SimpleConnection as _;
        let sql = match conn {
            DbConnection::Sqlite(_) => sqlite::PRAGMAS.as_str(),
            DbConnection::Postgresql(_) => "SET TIME ZONE 'UTC'",
        };
        conn.batch_execute(sql)
            .map_err(diesel::r2d2::Error::QueryError)
    }
}

/// Opens a pool over the database at `location`. A SQLite file and its
/// parent directory are made when missing and the file is switched to WAL;
/// a PostgreSQL server must answer within the connect timeout.
pub fn open_pool(location: &Location, options: PoolOptions) -> Result<DbPool, DbError> {
    let open_err = |message: String| DbError::Open {
        location: location.to_string(),
        message: match location {
            Location::Postgres(url) => url.scrub(&message),
            Location::Sqlite(_) => message,
        },
    };
    if let Location::Sqlite(path) = location {
        sqlite::prepare_file(path).map_err(open_err)?;
    }
    let manager = Manager {
        location: location.clone(),
        connect_timeout: options.connect_timeout,
    };
    let pool = Pool::builder()
        .max_size(options.max_size.max(1))
        // r2d2 keeps max_size idle connections by default; a farm of many
        // workers on one PostgreSQL server keeps only one each.
        .min_idle(Some(1))
        .connection_timeout(options.connect_timeout.max(Duration::from_secs(1)) * 2)
        .connection_customizer(Box::new(Customize))
        .error_handler(Box::new(LogErrors))
        .build(manager)
        .map_err(|e| open_err(e.to_string()))?;
    if let Location::Sqlite(path) = location {
        let mut conn = pool.get().map_err(|e| open_err(e.to_string()))?;
        sqlite::enable_wal(&mut conn).map_err(open_err)?;
        drop(conn);
        sqlite::restrict_permissions(path);
    }
    Ok(pool)
}

/// r2d2's background connection errors, logged once each through tracing
/// (they carry no password: [`Manager::connect`] scrubbed them).
#[derive(Debug)]
struct LogErrors;

impl r2d2::HandleError<diesel::r2d2::Error> for LogErrors {
    fn handle_error(&self, error: diesel::r2d2::Error) {
        tracing::warn!(%error, "database connection failed");
    }
}

/// The newest schema version this binary knows (the same on both
/// backends: a test holds the two migration folders to the same versions).
pub fn binary_schema_version() -> String {
    sqlite_versions().into_iter().max().unwrap_or_default()
}

/// The versions of the SQLite migrations, oldest first.
pub fn sqlite_versions() -> Vec<String> {
    names(MigrationSource::<diesel::sqlite::Sqlite>::migrations(
        &SQLITE_MIGRATIONS,
    ))
}

/// The versions of the PostgreSQL migrations, oldest first.
pub fn postgres_versions() -> Vec<String> {
    names(MigrationSource::<diesel::pg::Pg>::migrations(
        &POSTGRES_MIGRATIONS,
    ))
}

fn names<DB: diesel::backend::Backend>(
    migrations: diesel::migration::Result<Vec<Box<dyn diesel::migration::Migration<DB>>>>,
) -> Vec<String> {
    let mut v: Vec<String> = migrations
        .map(|m| m.iter().map(|m| m.name().version().to_string()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Applies every pending migration; returns how many ran. On PostgreSQL
/// under an advisory lock, so that two apps starting at once take turns.
pub fn run_migrations(conn: &mut DbConnection) -> Result<usize, DbError> {
    let err = |e: Box<dyn std::error::Error + Send + Sync>| DbError::Migration(e.to_string());
    match conn {
        DbConnection::Sqlite(c) => c
            .run_pending_migrations(SQLITE_MIGRATIONS)
            .map(|v| v.len())
            .map_err(err),
        DbConnection::Postgresql(c) => {
            let lock = |c: &mut PgConnection, f: &str| {
                diesel::sql_query(format!("SELECT {f}({MIGRATE_LOCK})"))
                    .execute(c)
                    .map_err(|e| DbError::Migration(e.to_string()))
            };
            lock(c, "pg_advisory_lock")?;
            let applied = c
                .run_pending_migrations(POSTGRES_MIGRATIONS)
                .map(|v| v.len())
                .map_err(err);
            lock(c, "pg_advisory_unlock")?;
            applied
        }
    }
}

/// Checks that the database's schema is exactly this binary's: fails with
/// both versions named when it is older (migrations pending) or newer (a
/// migration this binary does not know was applied).
pub fn ensure_schema(conn: &mut DbConnection) -> Result<(), DbError> {
    let binary = binary_schema_version();
    let err = |e: Box<dyn std::error::Error + Send + Sync>| DbError::Migration(e.to_string());
    let (applied, known) = match conn {
        DbConnection::Sqlite(c) => (c.applied_migrations().map_err(err)?, sqlite_versions()),
        DbConnection::Postgresql(c) => (c.applied_migrations().map_err(err)?, postgres_versions()),
    };
    let applied: Vec<String> = applied.iter().map(ToString::to_string).collect();
    let Some(database) = applied.iter().max().cloned() else {
        return Err(DbError::NoSchema { binary });
    };
    if applied.iter().any(|v| !known.contains(v)) {
        return Err(DbError::Newer { database, binary });
    }
    if known.iter().any(|v| !applied.contains(v)) {
        return Err(DbError::Older { database, binary });
    }
    Ok(())
}

/// Opens a pool and migrates it: what tests and `testarena-app` start with.
pub fn open_migrated(location: &Location, options: PoolOptions) -> Result<DbPool, DbError> {
    let pool = open_pool(location, options)?;
    let mut conn = pool.get().map_err(|e| DbError::Open {
        location: location.to_string(),
        message: e.to_string(),
    })?;
    run_migrations(&mut conn)?;
    ensure_schema(&mut conn)?;
    Ok(pool)
}

/// A migrated SQLite file at `path` with a pool of `max_size`: what tests
/// and the benchmarks start with.
pub fn open_sqlite(path: &std::path::Path, max_size: u32) -> Result<DbPool, DbError> {
    open_migrated(
        &Location::Sqlite(path.to_owned()),
        PoolOptions::sized(max_size),
    )
}

/// Runs `f` in one write transaction: `BEGIN IMMEDIATE` on SQLite (the
/// write lock up front, so two writers never deadlock on an upgrade); on
/// PostgreSQL a transaction that takes the store's advisory lock first, so
/// that read-then-write sequences never interleave (see the module doc).
pub fn write<T, E, F>(conn: &mut DbConnection, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<DieselError>,
{
    match conn {
        DbConnection::Sqlite(c) => {
            AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")?;
        }
        DbConnection::Postgresql(c) => {
            AnsiTransactionManager::begin_transaction(c)?;
            if let Err(e) =
                diesel::sql_query(format!("SELECT pg_advisory_xact_lock({WRITE_LOCK})")).execute(c)
            {
                AnsiTransactionManager::rollback_transaction(c)?;
                return Err(e.into());
            }
        }
    }
    // From here on as Diesel's own `transaction`: commit on Ok, roll back
    // on Err (the multi-connection's manager delegates to the variant's).
    match f(conn) {
        Ok(value) => {
            DbConnection::commit_transaction(conn)?;
            Ok(value)
        }
        Err(user_error) => match DbConnection::rollback_transaction(conn) {
            Ok(()) | Err(DieselError::BrokenTransactionManager) => Err(user_error),
            Err(rollback_error) => Err(rollback_error.into()),
        },
    }
}

#[derive(QueryableByName)]
struct Now {
    #[diesel(sql_type = diesel::sql_types::Timestamp)]
    now: NaiveDateTime,
}

/// The current UTC time by the database's clock: the server's on
/// PostgreSQL (heartbeats, leases and `worker lost` use it, so that a host
/// whose clock is off neither loses nor steals queues), this host's on
/// SQLite, which lives on this host.
pub fn db_now(conn: &mut DbConnection) -> Result<NaiveDateTime, DieselError> {
    match conn {
        DbConnection::Sqlite(_) => Ok(crate::store::now()),
        DbConnection::Postgresql(c) => {
            diesel::sql_query("SELECT timezone('UTC', clock_timestamp())::timestamp AS now")
                .get_result::<Now>(c)
                .map(|r| r.now)
        }
    }
}

/// Sends `payload` on PostgreSQL's `channel` when the transaction (or the
/// statement) commits; nothing on SQLite, whose workers watch the file.
pub fn notify(conn: &mut DbConnection, channel: &str, payload: &str) -> Result<(), DieselError> {
    use diesel::sql_types::Text;
    if let DbConnection::Postgresql(c) = conn {
        diesel::sql_query("SELECT pg_notify($1, $2)")
            .bind::<Text, _>(channel)
            .bind::<Text, _>(payload)
            .execute(c)?;
    }
    Ok(())
}
