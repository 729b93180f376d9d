//! TestArena's worker daemon (`testarena-worker`): claims waiting queues from
//! the database, checks their branch out, builds the firmware, runs every
//! scenario's tests (QEMU boots and `sh -c` commands) and records logs and
//! results as they happen (DESIGN sections 2 to 5).
//!
//! Modules, from the bottom up:
//! - [`process`]: children in their own process group that die with the
//!   worker, and killing a group for sure;
//! - [`logfile`]: append-only logs and the queue timeline, each written by
//!   its own writer off the async executor;
//! - [`matcher`]: the pure streaming matcher of `<boot/>` tests;
//! - [`db`]: the one helper that runs blocking store, git and file calls,
//!   and a running queue's fenced writes that wait out a database outage;
//! - [`ship`]: on PostgreSQL, a queue's log files appended to the database
//!   as they grow;
//! - [`inputs`]: scenario and JUnit files read from a checkout, an
//!   `env_script`'s environment;
//! - [`cache`]: the build cache; [`attempts`]: an earlier attempt's logs;
//! - [`workspace`]: the slots and their checkouts, and the end of a queue's
//!   files (build directory, `junit.xml`);
//! - [`nudge`]: on PostgreSQL, a queue's notification wakes its abort poll;
//! - [`supervise`]: runs one child under every deadline and the abort poll;
//! - [`runner`] and [`testrun`]: one queue, from checkout to verdict
//!   (`verdict`: how its attempt ends; `finish`: that end stored);
//! - [`daemon`]: registration, heartbeat, recovery, the claim loop, shutdown.
//!
//! Errors inside the library are [`Error`]; a queue's own failures (a build
//! that fails, a test that times out) are not errors but verdicts recorded
//! in the database.

pub mod attempts;
pub mod board;
pub mod cache;
pub mod daemon;
pub mod db;
mod finish;
pub mod inputs;
pub mod logfile;
pub mod matcher;
pub mod nudge;
pub mod process;
pub mod runner;
pub mod ship;
pub mod supervise;
pub mod testrun;
mod verdict;
pub mod workspace;

use std::path::PathBuf;

use testarena_domain::db::DbError;
use testarena_domain::git::GitError;
use testarena_domain::store::StoreError;

/// What can go wrong inside the worker itself.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Git(#[from] GitError),
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A blocking task panicked or was cancelled.
    #[error("background task failed: {0}")]
    Join(String),
    /// Something the configuration lacks (an unknown repo or target).
    #[error("{0}")]
    Config(String),
    /// A board fault (DESIGN section 10): `board <id>: <what>`; `retry`
    /// when another board could run the queue.
    #[error("{reason}")]
    Board { reason: String, retry: bool },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
