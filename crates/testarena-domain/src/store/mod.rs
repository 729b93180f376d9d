//! The store: every query the app and the worker run. All SQL lives here.
//!
//! Functions take a `&mut DbConnection` (a pooled one derefs to it) and
//! are synchronous: callers run them off the async threads. Read-then-write
//! sequences use `immediate_transaction`, so SQLite takes the write lock up
//! front and two writers never deadlock on an upgrade; no transaction is ever
//! held across git, a build or a test run.
//!
//! Lookups by a unique key use `get_result`, never `first`: `first` binds
//! `LIMIT ?`, and SQLite (since 3.47) plans with the value bound to a
//! LIMIT, so every new binding expires the cached statement and each call
//! would parse and plan it again, under SQLite's global allocator mutex.
//! For the same reason a query of one id uses `=`, not `IN (?)`.

/// Runs `$body` with `$c` bound to the backend's own connection: for the
/// queries Diesel builds per backend only (`RETURNING`, `ON CONFLICT`).
macro_rules! per_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::DbConnection::Sqlite($c) => $body,
            $crate::db::DbConnection::Postgresql($c) => $body,
        }
    };
}

mod attempts;
pub mod board_queues;
pub mod boards;
pub mod deliveries;
mod history;
pub mod logs;
mod queues;
mod seed;
mod users;
mod workers;

pub use attempts::*;
pub use history::*;
pub use queues::*;
pub use seed::*;
pub use users::*;
pub use workers::*;

use chrono::{NaiveDateTime, Timelike as _};
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use crate::status::IllegalTransition;

/// What a store function can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what} {id:?} not found")]
    NotFound { what: &'static str, id: String },
    /// The request contradicts what is stored (a duplicate id, deleting a running queue).
    #[error("{0}")]
    Conflict(String),
    /// The caller may not do this to this row (not the queue's owner).
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Illegal(#[from] IllegalTransition),
    /// The database stayed locked past the busy timeout, or no pooled
    /// connection was free: the caller may retry (HTTP 503 with Retry-After).
    #[error("database busy: {0}")]
    Busy(String),
    /// The disk holding the database is full (`SQLITE_FULL`): nothing was
    /// written, and the same call can succeed once space is freed.
    #[error("disk full: the database cannot grow: {0}")]
    Full(String),
    /// The database cannot be reached (PostgreSQL down, restarting or cut
    /// off): nothing was written, the same call can succeed once it is
    /// back (HTTP 503 `unavailable` with Retry-After).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A write of a running queue whose run the farm ended meanwhile
    /// (`worker lost` while its worker was cut off): nothing was written,
    /// and the worker must stop the queue ([`logs::Fence`]).
    #[error("fenced: {0}")]
    Fenced(String),
    #[error("database error: {0}")]
    Db(DieselError),
}

impl StoreError {
    pub(crate) fn not_found(what: &'static str, id: impl Into<String>) -> Self {
        Self::NotFound {
            what,
            id: id.into(),
        }
    }
}

impl From<DieselError> for StoreError {
    fn from(e: DieselError) -> Self {
        match &e {
            DieselError::NotFound => Self::NotFound {
                what: "row",
                id: String::new(),
            },
            DieselError::DatabaseError(_, info)
                if info.message().contains("database is locked")
                    || info.message().contains("database is busy") =>
            {
                Self::Busy(info.message().to_owned())
            }
            DieselError::DatabaseError(_, info)
                if info.message().contains("database or disk is full") =>
            {
                Self::Full(info.message().to_owned())
            }
            // PostgreSQL: two transactions in each other's way; the loser
            // changed nothing and may run again.
            DieselError::DatabaseError(DatabaseErrorKind::SerializationFailure, info) => {
                Self::Busy(info.message().to_owned())
            }
            DieselError::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                info,
            ) => Self::Unavailable(info.message().to_owned()),
            DieselError::DatabaseError(_, info) if is_unreachable(info.message()) => {
                Self::Unavailable(info.message().to_owned())
            }
            _ => Self::Db(e),
        }
    }
}

impl From<r2d2::Error> for StoreError {
    /// No connection within the pool's timeout: every one is in use (busy)
    /// or none can be made (the database is unreachable).
    fn from(e: r2d2::Error) -> Self {
        let message = e.to_string();
        if is_unreachable(&message) {
            Self::Unavailable(message)
        } else {
            Self::Busy(message)
        }
    }
}

/// libpq's words for a server that is down, restarting or cut off.
fn is_unreachable(message: &str) -> bool {
    [
        "server closed the connection",
        "Connection refused",
        "could not connect",
        "connection to server",
        "terminating connection",
        "the database system is",
        "no connection to the server",
        "timeout expired",
        "Connection timed out",
        "could not receive data",
        "could not send data",
        "SSL SYSCALL error",
    ]
    .iter()
    .any(|m| message.contains(m))
}

/// Maps a unique-constraint violation to [`StoreError::Conflict`] with `message`.
pub(crate) fn conflict_on_unique(e: DieselError, message: impl FnOnce() -> String) -> StoreError {
    match e {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
            StoreError::Conflict(message())
        }
        other => other.into(),
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Runs `f` in one read transaction, so that every query in it sees the
/// same state of the database whatever other connections commit meanwhile
/// (a page of queues and the tasks of exactly those queues). On
/// PostgreSQL that takes `REPEATABLE READ` (its default, `READ
/// COMMITTED`, sees each statement's own moment), `READ ONLY`: for reads
/// only. Inside a transaction already (a queue's detail read within a
/// page's snapshot, or within a write), that transaction is the snapshot:
/// `f` runs in it, without a savepoint's two round trips.
pub fn snapshot<T>(
    conn: &mut crate::db::DbConnection,
    f: impl FnOnce(&mut crate::db::DbConnection) -> StoreResult<T>,
) -> StoreResult<T> {
    use diesel::connection::TransactionManager as _;
    use diesel::{Connection as _, RunQueryDsl as _};
    type Manager = <crate::db::DbConnection as diesel::Connection>::TransactionManager;
    if let Ok(Some(_)) = Manager::transaction_manager_status_mut(conn).transaction_depth() {
        return f(conn);
    }
    conn.transaction(|conn| {
        if conn.is_postgres() {
            diesel::sql_query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .execute(conn)?;
        }
        f(conn)
    })
}

/// The current time as stored: UTC without an offset, microsecond precision.
pub fn now() -> NaiveDateTime {
    let now = chrono::Utc::now().naive_utc();
    // SQLite keeps microseconds; trimming here makes a stored value equal
    // the one that was written.
    now.with_nanosecond(now.and_utc().timestamp_subsec_micros() * 1000)
        .unwrap_or(now)
}
