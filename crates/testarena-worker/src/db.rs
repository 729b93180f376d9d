//! The one helper through which the worker runs blocking work (Diesel and
//! git2 calls): on tokio's blocking pool, inside the caller's tracing span,
//! never on an async executor thread.

use std::time::Duration;

use testarena_domain::db::{self as domain_db, DbConnection, DbPool};
use testarena_domain::store::logs::Fence;
use testarena_domain::store::{StoreError, StoreResult};

use crate::{Error, Result};

/// Attempts of a store call that found the database busy.
const BUSY_ATTEMPTS: u32 = 3;
/// Pause between those attempts.
const BUSY_PAUSE: Duration = Duration::from_millis(200);
/// The longest pause between attempts of a running queue's write while
/// the database is unreachable (the pauses double up to it).
const BACK_PAUSE_MAX: Duration = Duration::from_secs(2);

/// Runs `f` on the blocking pool, in the current tracing span.
pub async fn blocking<T, F>(f: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        f()
    })
    .await
    .map_err(|e| Error::Join(e.to_string()))?
}

/// The database, reached only through [`Db::run`].
#[derive(Debug, Clone)]
pub struct Db {
    pool: DbPool,
}

impl Db {
    pub fn new(pool: DbPool) -> Self {
        Self { pool }
    }

    /// Fails with both versions named unless the schema is exactly this
    /// binary's: the worker never migrates, the app owns the schema.
    pub async fn ensure_schema(&self) -> Result<()> {
        let pool = self.pool.clone();
        blocking(move || {
            let mut conn = pool.get().map_err(StoreError::from)?;
            Ok(domain_db::ensure_schema(&mut conn)?)
        })
        .await
    }

    /// The pool, for the log shipper's blocking flushes.
    pub(crate) fn pool(&self) -> &DbPool {
        &self.pool
    }

    /// Runs one write of a running queue. With a `fence` (PostgreSQL) it
    /// is one write transaction that passes [`Fence::check`] first, and it
    /// is tried again, with pauses that double up to [`BACK_PAUSE_MAX`],
    /// for as long as the database is unreachable or busy: the queue goes
    /// on when the database is back instead of ending with an error. It
    /// fails with [`StoreError::Fenced`] once the farm ended the run.
    /// Without one (SQLite, one host) it is [`Db::run`].
    pub async fn run_fenced<T, F>(&self, fence: Option<&Fence>, f: F) -> Result<T>
    where
        F: Fn(&mut DbConnection) -> StoreResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let Some(fence) = fence.cloned() else {
            return self.run(f).await;
        };
        self.run_waiting(move |c| {
            domain_db::write(c, |c| {
                fence.check(c)?;
                f(c)
            })
        })
        .await
    }

    /// Runs one store call, tried again (pauses doubling up to
    /// [`BACK_PAUSE_MAX`]) for as long as the database is unreachable or
    /// busy: the writes of a queue, whose end must be stored.
    pub async fn run_waiting<T, F>(&self, f: F) -> Result<T>
    where
        F: Fn(&mut DbConnection) -> StoreResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.pool.clone();
        blocking(move || {
            let mut pause = BUSY_PAUSE;
            let mut warned = false;
            loop {
                let result = pool
                    .get()
                    .map_err(StoreError::from)
                    .and_then(|mut conn| f(&mut conn));
                match result {
                    Err(e @ (StoreError::Unavailable(_) | StoreError::Busy(_))) => {
                        if !warned {
                            tracing::warn!(error = %e, "database unreachable; the queue's write waits for it");
                            warned = true;
                        }
                        std::thread::sleep(pause);
                        pause = (pause * 2).min(BACK_PAUSE_MAX);
                    }
                    other => {
                        if warned && other.is_ok() {
                            tracing::info!("database back; the queue's write went through");
                        }
                        return other.map_err(Error::from);
                    }
                }
            }
        })
        .await
    }

    /// Runs one store call with a pooled connection. A call that found the
    /// database busy is tried again: store calls are single transactions,
    /// so a busy one changed nothing.
    pub async fn run<T, F>(&self, f: F) -> Result<T>
    where
        F: Fn(&mut DbConnection) -> StoreResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.pool.clone();
        blocking(move || {
            let mut attempt = 1;
            loop {
                let result = pool
                    .get()
                    .map_err(StoreError::from)
                    .and_then(|mut conn| f(&mut conn));
                match result {
                    Err(StoreError::Busy(e)) if attempt < BUSY_ATTEMPTS => {
                        tracing::warn!(error = %e, attempt, "database busy; trying again");
                        std::thread::sleep(BUSY_PAUSE);
                        attempt += 1;
                    }
                    other => return other.map_err(Error::from),
                }
            }
        })
        .await
    }
}
