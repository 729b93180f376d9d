//! PostgreSQL's `LISTEN`: a thread with its own connection that hands every
//! notification on the farm's channel to a callback (DESIGN section 13).
//!
//! Diesel shows no socket to wait on, so the thread asks libpq for
//! notifications every [`CHECK`] (a non-blocking read that costs
//! microseconds when nothing came). A lost connection is made again with a
//! growing pause; the callback hears [`Event::Reconnected`] then, since
//! notifications sent meanwhile are gone and the listener must look.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use diesel::connection::SimpleConnection as _;
use diesel::{Connection as _, PgConnection};

use super::PgUrl;

/// The channel of every notification the farm sends.
pub const CHANNEL: &str = "testarena";

/// How often the thread asks for notifications.
pub const CHECK: Duration = Duration::from_millis(1);

/// What the listener hands on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A notification's payload (`queue:<id>`, `abort:<id>`, `log:<id>`, ...).
    Notified(String),
    /// The connection was made again: what was sent meanwhile is lost.
    Reconnected,
}

/// Stops the thread when dropped.
#[derive(Debug)]
pub struct Listener {
    stop: Arc<AtomicBool>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Starts listening on [`CHANNEL`]; `on_event` runs on the listener's
/// thread and must not block.
pub fn listen(
    url: &PgUrl,
    connect_timeout: Duration,
    on_event: impl Fn(Event) + Send + 'static,
) -> std::io::Result<Listener> {
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = Arc::clone(&stop);
    let target = super::connect_string(url, connect_timeout);
    let shown = url.to_string();
    std::thread::Builder::new()
        .name("db-listen".into())
        .spawn(move || {
            let mut pause = Duration::from_millis(100);
            let mut first = true;
            while !stopped.load(Ordering::Relaxed) {
                match PgConnection::establish(&target)
                    .map_err(|e| e.to_string())
                    .and_then(|mut c| {
                        c.batch_execute(&format!("LISTEN {CHANNEL}"))
                            .map(|()| c)
                            .map_err(|e| e.to_string())
                    }) {
                    Ok(mut conn) => {
                        if !first {
                            tracing::info!(database = %shown, "listening again");
                            on_event(Event::Reconnected);
                        }
                        first = false;
                        pause = Duration::from_millis(100);
                        if let Err(e) = pump(&mut conn, &stopped, &on_event) {
                            tracing::warn!(database = %shown, error = %e, "listen connection lost");
                        }
                    }
                    Err(e) => {
                        first = false;
                        tracing::warn!(database = %shown, error = %e, "cannot listen; polling only until it can");
                    }
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_secs(2));
            }
        })?;
    Ok(Listener { stop })
}

/// Hands on notifications until `stop` or a connection error.
fn pump(
    conn: &mut PgConnection,
    stop: &AtomicBool,
    on_event: &impl Fn(Event),
) -> Result<(), String> {
    // A broken connection shows only when written to: a cheap query now
    // and then (every 2 s) finds it.
    let mut checks = 0u32;
    while !stop.load(Ordering::Relaxed) {
        for n in conn.notifications_iter() {
            let n = n.map_err(|e| e.to_string())?;
            on_event(Event::Notified(n.payload));
        }
        checks += 1;
        if checks.is_multiple_of(2000) {
            conn.batch_execute("SELECT 1").map_err(|e| e.to_string())?;
        }
        std::thread::sleep(CHECK);
    }
    Ok(())
}
