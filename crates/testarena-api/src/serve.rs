//! Starting the server: open and migrate the database, build the state,
//! bind, and stop gracefully on SIGTERM or Ctrl-C.

use std::net::TcpListener;

use actix_web::{HttpServer, web};
use testarena_domain::config::Config;
use testarena_domain::db;

use crate::{AppState, create_app};

/// Connections in the pool: handlers, event streams and the blocking pool
/// share them; SQLite serializes writers anyway.
const POOL_SIZE: u32 = 16;

/// Opens the database and builds the state. On SQLite pending migrations
/// run first (one host, one app); on PostgreSQL `testarena-app migrate`
/// applies them, so that apps and workers on many hosts never race to
/// migrate mid-upgrade. Either way a schema that is not exactly this
/// binary's refuses the start, naming both versions.
pub fn prepare(config: Config) -> anyhow::Result<web::Data<AppState>> {
    let location = config.database_location()?;
    let options = config.pool_options(POOL_SIZE);
    let pool = if location.is_postgres() {
        let pool = db::open_pool(&location, options)?;
        db::ensure_schema(&mut *pool.get()?)?;
        pool
    } else {
        db::open_migrated(&location, options)?
    };
    tracing::info!(database = %location, "database open");
    Ok(web::Data::new(AppState::new(config, pool)?))
}

/// Serves on `listener` until SIGTERM or Ctrl-C.
pub async fn run(state: web::Data<AppState>, listener: TcpListener) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(2, 8);
    let server = HttpServer::new({
        let state = state.clone();
        move || create_app(state.clone())
    })
    .workers(workers)
    .shutdown_timeout(5)
    .listen(listener)?
    .run();
    tracing::info!(%addr, "testarena-app listening");
    // Commit statuses and notifications, in the background (DESIGN section 12).
    crate::forge::sender::spawn(state.clone());
    server.await?;
    tracing::info!("testarena-app stopped");
    Ok(())
}
