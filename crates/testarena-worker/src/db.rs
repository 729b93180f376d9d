//! The one helper through which the worker runs blocking work (Diesel and
//! git2 calls): on tokio's blocking pool, inside the caller's tracing span,
//! never on an async executor thread.

use std::time::Duration;

use testarena_domain::db::{self as domain_db, DbConnection, DbPool};
use testarena_domain::store::{StoreError, StoreResult};

use crate::{Error, Result};

/// Attempts of a store call that found the database busy.
const BUSY_ATTEMPTS: u32 = 3;
/// Pause between those attempts.
const BUSY_PAUSE: Duration = Duration::from_millis(200);

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
