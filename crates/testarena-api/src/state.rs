//! The app's shared state and the one helper that runs blocking work
//! (Diesel, git2, argon2) off the async threads.

use std::path::Path;
use std::sync::Arc;

use actix_web::cookie::Key;
use actix_web::web;
use testarena_domain::config::Config;
use testarena_domain::db::{DbConnection, DbPool, Location};
use testarena_domain::paths::Home;
use testarena_domain::store::StoreError;

use crate::credentials::{BasicCache, LoginLimiter};
use crate::error::ApiError;
use crate::logs::hub::Hub;
use crate::metrics::Metrics;
use crate::submit::Fetcher;

/// Everything a handler needs; shared through `web::Data` (an `Arc`).
pub struct AppState {
    pub config: Arc<Config>,
    pub pool: DbPool,
    pub home: Home,
    pub cookie_key: Key,
    pub basic_cache: BasicCache,
    pub login_limiter: LoginLimiter,
    pub metrics: Metrics,
    pub fetcher: Arc<Fetcher>,
    /// The `LISTEN` that wakes live events on PostgreSQL; its presence
    /// also says that logs are read from the database, not from `home`.
    pub hub: Hub,
}

impl std::fmt::Debug for AppState {
    /// Leaves the cookie key out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.config)
            .field("home", &self.home)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Builds the state over an open, migrated pool. Reads (or creates) the
    /// cookie key under `home`; on PostgreSQL starts the `LISTEN` thread.
    pub fn new(config: Config, pool: DbPool) -> anyhow::Result<Self> {
        let hub = match config.database_location()? {
            Location::Postgres(url) => {
                let timeout = config.pool_options(1).connect_timeout;
                Hub::listening(&url, timeout)?
            }
            Location::Sqlite(_) => Hub::polling(),
        };
        let home = Home::new(config.home.clone());
        std::fs::create_dir_all(home.queues_dir())?;
        let cookie_key = load_or_create_key(&home.cookie_key())?;
        let login_limiter = LoginLimiter::new(config.server.login_attempts_per_minute);
        Ok(Self {
            config: Arc::new(config),
            pool,
            home,
            cookie_key,
            basic_cache: BasicCache::default(),
            login_limiter,
            metrics: Metrics::default(),
            fetcher: Arc::default(),
            hub,
        })
    }

    /// Runs `f` with a pooled connection on the blocking thread pool, inside
    /// the caller's tracing span.
    pub async fn db<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.pool.clone();
        blocking(move || {
            let mut conn = pool.get().map_err(StoreError::from)?;
            f(&mut conn)
        })
        .await
    }
}

/// Runs blocking work (git2, argon2, file I/O) on the blocking pool, inside
/// the caller's tracing span.
pub async fn blocking<T, F>(f: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    let span = tracing::Span::current();
    web::block(move || span.in_scope(f)).await?
}

/// The key that encrypts session cookies: 64 random bytes in a 0600 file,
/// created on first start and kept, so sessions survive restarts.
fn load_or_create_key(path: &Path) -> anyhow::Result<Key> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::read(path) {
        Ok(bytes) if bytes.len() == 64 => return Ok(Key::from(&bytes)),
        Ok(bytes) => anyhow::bail!(
            "cookie key {} has {} bytes, expected 64: remove it to make a new one",
            path.display(),
            bytes.len()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => anyhow::bail!("cannot read cookie key {}: {e}", path.display()),
    }
    let bytes = testarena_domain::secret::random_bytes::<64>();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| anyhow::anyhow!("cannot create cookie key {}: {e}", path.display()))?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    Ok(Key::from(&bytes))
}
