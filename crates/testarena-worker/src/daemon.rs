//! The daemon: registers the worker, recovers lost queues, heartbeats,
//! claims waiting queues up to `slots` at a time and runs each in its own
//! tokio task; on SIGTERM or SIGINT it stops claiming, stops its queues
//! (`aborted`, "worker stopped") and returns within `abort_grace_s` + 2 s.
//!
//! Pickup: the claim loop runs on three occasions: when the database
//! changes (on SQLite a thread looks at the size and modification time of
//! the WAL file every [`WAKE_CHECK`], a `stat` that costs microseconds; on
//! PostgreSQL the app's `NOTIFY` reaches a `LISTEN` thread; either way a
//! submission is claimed within milliseconds), when one of its queues ends
//! (its slot is free), and every `poll_interval_ms` as the fallback (a
//! change the WAL file does not show, another journal mode, a database on
//! a filesystem whose times are coarse).
//!
//! Slots: a queue runs in a slot leased from the worker's
//! [`SlotPool`], which keeps its checkouts (`work/<worker_id>/<slot>/`); the
//! slot is given back once the queue's end is recorded, and a claim
//! prefers a free slot that holds the queue's repository already.
//!
//! Recovery runs at start and on every heartbeat: a running queue whose
//! worker went silent for `lost_after_s`, or that this worker id ran before
//! this start, becomes `error` "worker lost" (or, while `retry_errors`
//! allows, waits for its next attempt: a lost worker is the farm's
//! failure), and what is left of its
//! processes here is killed (its recorded process group, if that group
//! still belongs to it, and every process carrying its queue id); its
//! `junit.xml` is written by the same [`workspace::end_queue`] as a queue's
//! own end. At start, the build directories of this worker's slots are
//! removed (a run before a crash left them).

use std::collections::HashMap;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};
use testarena_domain::db::Location;

use chrono::NaiveDateTime;
use testarena_domain::config::Config;
use testarena_domain::db as domain_db;
use testarena_domain::db::listen::Event;
use testarena_domain::models::QueueRow;
use testarena_domain::paths::Home;
use testarena_domain::status::Status;
use testarena_domain::store;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tracing::Instrument as _;

use crate::board;
use crate::db::{self, Db};
use crate::logfile::Timeline;
use crate::nudge::Nudges;
use crate::process;
use crate::runner::{self, Context};
use crate::supervise::shutting_down;
use crate::workspace::{self, SlotPool};
use crate::{Error, Result};

/// Time kept for the last bookkeeping after the grace period, out of the
/// 2 s the design allows beyond it.
const SHUTDOWN_MARGIN: Duration = Duration::from_millis(1500);
/// How often the database's WAL file is looked at for a change.
pub const WAKE_CHECK: Duration = Duration::from_millis(5);

/// A watch flag set to `true` on the first SIGTERM or SIGINT.
pub fn shutdown_on_signals() -> Result<watch::Receiver<bool>> {
    use tokio::signal::unix::{SignalKind, signal};
    let io = |e| Error::io("signal handler", e);
    let mut term = signal(SignalKind::terminate()).map_err(io)?;
    let mut int = signal(SignalKind::interrupt()).map_err(io)?;
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "shutting down");
        let _ = tx.send(true);
        // Later signals are absorbed: the shutdown is already on its way.
        loop {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
    });
    Ok(rx)
}

/// Runs the worker until `shutdown` becomes `true`.
pub async fn run(config: Config, mut shutdown: watch::Receiver<bool>) -> Result<()> {
    let config = Arc::new(config);
    let w = config.worker.clone();
    let location = config
        .database_location()
        .map_err(|e| Error::Config(e.to_string()))?;
    let pool = domain_db::open_pool(&location, config.pool_options(w.slots.saturating_add(2)))?;
    let db = Db::new(pool);
    db.ensure_schema().await?;
    tracing::info!(database = %location, "database open");
    let worker_id = config.worker_id();
    let ctx = Context {
        home: Home::new(config.home.clone()),
        db: db.clone(),
        worker_id: worker_id.clone(),
        config: Arc::clone(&config),
        nudges: Nudges::default(),
    };
    let (id, version) = (worker_id.clone(), env!("CARGO_PKG_VERSION"));
    let me = db
        .run(move |c| store::register_worker(c, &id, w.slots, version, std::process::id()))
        .await?;
    tracing::info!(worker.id = %worker_id, slots = w.slots, "worker registered");
    if !w.keep_workspace {
        workspace::sweep_build_dirs(&ctx.home, &worker_id).await;
    }
    recover(&ctx, me.started_at).await;
    // After the recovery, which released the boards an earlier run held.
    // A board another live worker holds refuses the start.
    let boards = board::register(&db, &config, &worker_id).await?;
    if !config.boards.is_empty() {
        tracing::info!(boards = ?boards, "boards registered");
    }

    let mut slots = Slots {
        running: JoinSet::new(),
        queues: HashMap::new(),
        pool: SlotPool::new(w.slots as usize),
    };
    let db_changed = DbWatch::start(
        &location,
        config.pool_options(1).connect_timeout,
        ctx.nudges.clone(),
    );
    let mut heartbeat = tokio::time::interval(Duration::from_secs(w.heartbeat_s));
    let mut poll = tokio::time::interval(Duration::from_millis(w.poll_interval_ms));
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutting_down(&mut shutdown) => break,
            _ = heartbeat.tick() => {
                let (id, slots) = (worker_id.clone(), w.slots);
                let beat = db.run(move |c| {
                    if store::heartbeat(c, &id)?.is_none() {
                        // Our row was removed: without it the others would
                        // think us lost and take our queues.
                        store::register_worker(c, &id, slots, version, std::process::id())?;
                        tracing::warn!(worker.id = %id, "worker row was missing: registered again");
                    }
                    Ok(())
                });
                if let Err(e) = beat.await {
                    tracing::warn!(error = %e, "heartbeat failed");
                }
                recover(&ctx, me.started_at).await;
                if let Err(e) = board::register(&db, &config, &worker_id).await {
                    tracing::error!(error = %e, "cannot register the boards");
                }
            },
            _ = poll.tick() => slots.fill(&ctx, &shutdown).await,
            () = db_changed.notified() => slots.fill(&ctx, &shutdown).await,
            // A queue's end is recorded: its slot is free.
            () = slots.pool.freed() => slots.fill(&ctx, &shutdown).await,
            Some(done) = slots.running.join_next_with_id() => {
                let id = match &done {
                    Ok((id, ())) => *id,
                    Err(e) => e.id(),
                };
                if let (Some(queue), Err(e)) = (slots.queues.remove(&id), done) {
                    // A panic: the queue's own run cannot record its end.
                    tracing::error!(queue.id = %queue, error = %e, "queue task failed");
                    abandon(&ctx, &queue, Status::Error, "worker failed").await;
                }
                // A slot is free: the next queue need not wait for a tick.
                slots.fill(&ctx, &shutdown).await;
            },
        }
    }
    drop(db_changed);
    stop_queues(&ctx, slots.running, slots.queues).await;
    Ok(())
}

/// The queues this worker runs, each in its own task and slot.
struct Slots {
    running: JoinSet<()>,
    /// The queue id of each task, to record the end of one that panicked.
    queues: HashMap<tokio::task::Id, String>,
    pool: SlotPool,
}

impl Slots {
    /// Claims waiting queues while a slot is free and starts them.
    async fn fill(&mut self, ctx: &Context, shutdown: &watch::Receiver<bool>) {
        while !*shutdown.borrow() {
            // Taken before the claim, so a claimed queue always has a slot.
            let Some(mut lease) = self.pool.take() else {
                break;
            };
            let Some(queue) = claim(&ctx.db, &ctx.worker_id, &ctx.config).await else {
                lease.unused();
                break;
            };
            lease.prefer(&queue.repo);
            let (ctx, stop, queue_id) = (ctx.clone(), shutdown.clone(), queue.id.clone());
            let handle = self.running.spawn(async move {
                runner::run_queue(&ctx, queue, lease, stop).await;
            });
            self.queues.insert(handle.id(), queue_id);
        }
    }
}

/// Wakes the claim loop when the database changes. SQLite in WAL mode
/// appends every commit to `<database>-wal`, so a change of that file's
/// size or modification time means someone wrote; a thread compares them
/// every [`WAKE_CHECK`]. It notifies once more on the check after a
/// change: a commit's frames reach the file just before the shared index
/// that makes them visible is updated. On PostgreSQL every notification
/// on the farm's channel wakes it ([`domain_db::listen`]), and a
/// `queue:<id>` one also wakes that queue's run if it runs here
/// ([`Nudges`]). Stops when dropped.
#[derive(Debug)]
struct DbWatch {
    changed: Arc<Notify>,
    stop: Arc<AtomicBool>,
    /// PostgreSQL's listener thread, stopped when dropped.
    _listener: Option<domain_db::listen::Listener>,
}

impl DbWatch {
    /// Watches the SQLite file's WAL, or listens on PostgreSQL.
    fn start(location: &Location, connect_timeout: Duration, nudges: Nudges) -> Self {
        let (changed, stop) = (Arc::new(Notify::new()), Arc::new(AtomicBool::new(false)));
        match location {
            Location::Sqlite(path) => Self::watch_wal(path, &changed, &stop),
            Location::Postgres(url) => {
                let notify = Arc::clone(&changed);
                // Any notification may concern this worker: a submission
                // to claim, an abort of one of its queues. The loop looks,
                // and so does the run of a queue that changed.
                let on_event = move |event: Event| {
                    match event {
                        Event::Notified(payload) => {
                            if let Some(id) = payload.strip_prefix("queue:") {
                                nudges.nudge(id);
                            }
                        }
                        Event::Reconnected => nudges.nudge_all(),
                    }
                    notify.notify_one();
                };
                match domain_db::listen::listen(url, connect_timeout, on_event) {
                    Ok(listener) => {
                        return Self {
                            changed,
                            stop,
                            _listener: Some(listener),
                        };
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot listen; polling only"),
                }
            }
        }
        Self {
            changed,
            stop,
            _listener: None,
        }
    }

    fn watch_wal(database: &Path, changed: &Arc<Notify>, stop: &Arc<AtomicBool>) {
        let mut wal = database.as_os_str().to_owned();
        wal.push("-wal");
        let wal = PathBuf::from(wal);
        let (notify, stopped) = (Arc::clone(changed), Arc::clone(stop));
        let spawned = std::thread::Builder::new()
            .name("db-watch".into())
            .spawn(move || {
                let mut last = wal_state(&wal);
                let mut again = false;
                while !stopped.load(Ordering::Relaxed) {
                    std::thread::sleep(WAKE_CHECK);
                    let now = wal_state(&wal);
                    if now != last {
                        last = now;
                        again = true;
                        notify.notify_one();
                    } else if again {
                        again = false;
                        notify.notify_one();
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot watch the database; polling only");
        }
    }

    /// Resolves after the next change (at once if one came since the last call).
    async fn notified(&self) {
        self.changed.notified().await;
    }
}

impl Drop for DbWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// What tells one version of the WAL file from the next.
fn wal_state(wal: &Path) -> Option<(u64, SystemTime, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(wal).ok()?;
    Some((meta.len(), meta.modified().ok()?, meta.ino()))
}

/// Claims a QEMU queue, or a board queue for one of this worker's boards
/// whose serial device exists now (the store checks the rest).
async fn claim(db: &Db, worker_id: &str, config: &Config) -> Option<QueueRow> {
    let id = worker_id.to_owned();
    let boards: Vec<String> = config
        .boards
        .iter()
        .filter(|b| Path::new(&b.serial).exists())
        .map(|b| b.id.clone())
        .collect();
    match db
        .run(move |c| store::claim_with_boards(c, &id, &boards))
        .await
    {
        Ok(queue) => queue,
        Err(e) => {
            tracing::warn!(error = %e, "cannot claim a queue");
            None
        }
    }
}

/// Waits for the queues, which see the shutdown flag themselves, up to the
/// grace period plus a margin; then kills and records what is left.
async fn stop_queues(
    ctx: &Context,
    mut running: JoinSet<()>,
    mut queues: HashMap<tokio::task::Id, String>,
) {
    let grace = Duration::from_secs(ctx.config.worker.abort_grace_s);
    let deadline = tokio::time::Instant::now() + grace + SHUTDOWN_MARGIN;
    while let Ok(Some(done)) = tokio::time::timeout_at(deadline, running.join_next_with_id()).await
    {
        if let Ok((id, ())) = done {
            queues.remove(&id);
        }
    }
    running.abort_all();
    for queue_id in queues.into_values() {
        tracing::warn!(queue.id = %queue_id, "queue still stopping at exit; killing it");
        abandon(ctx, &queue_id, Status::Aborted, "worker stopped").await;
    }
}

/// Ends a queue whose run can no longer do it itself: kills what is left
/// of its processes at once and records `status` with `reason`.
async fn abandon(ctx: &Context, queue_id: &str, status: Status, reason: &'static str) {
    process::stop(None, Some(queue_id), Duration::ZERO).await;
    let id = queue_id.to_owned();
    let finished = ctx
        .db
        .run(move |c| store::finish_queue(c, &id, status, reason))
        .await;
    if let Err(e) = finished {
        tracing::error!(queue.id = %queue_id, error = %e, "cannot record the queue's end");
    }
}

/// Marks lost queues `error` "worker lost" and cleans up after them.
async fn recover(ctx: &Context, me_started: NaiveDateTime) {
    let (me, lost_after, retry_errors) = (
        ctx.worker_id.clone(),
        Duration::from_secs(ctx.config.worker.lost_after_s),
        ctx.config.worker.retry_errors,
    );
    let lost = match ctx
        .db
        .run(move |c| store::mark_lost(c, &me, me_started, lost_after, retry_errors))
        .await
    {
        Ok(lost) => lost,
        Err(e) => {
            tracing::warn!(error = %e, "recovery failed");
            return;
        }
    };
    for store::LostQueue { queue, retried } in lost {
        let span = tracing::info_span!("queue", queue.id = %queue.id);
        if retried {
            // At once: a retried queue's next attempt runs under the same
            // queue id, and this worker claims nothing before its earlier
            // attempt's leftovers are gone (they are found by that id).
            clean_up_lost(ctx, queue, true).instrument(span).await;
            continue;
        }
        let ctx = ctx.clone();
        // In the background: killing leftovers may take the grace period,
        // and the heartbeat must not wait for it.
        tokio::spawn(async move { clean_up_lost(&ctx, queue, retried).await }.instrument(span));
    }
}

async fn clean_up_lost(ctx: &Context, queue: QueueRow, retried: bool) {
    tracing::warn!(worker = ?queue.worker_id, retried, "queue lost by its worker");
    let timeline = Timeline::open(&ctx.home.queue_log(&queue.id));
    if retried {
        timeline.line(&format!(
            "attempt {} ended error: worker lost (recovered by worker {}); {}",
            queue.attempt,
            ctx.worker_id,
            store::retry_reason(
                "worker lost",
                queue.attempt + 1,
                ctx.config.worker.retry_errors.min(store::MAX_RETRY_ERRORS) + 1
            )
        ));
    } else {
        timeline.line(&format!(
            "finished error: worker lost (recovered by worker {})",
            ctx.worker_id
        ));
    }
    let grace = Duration::from_secs(ctx.config.worker.abort_grace_s);
    let (recorded, id) = (queue.pgid, queue.id.clone());
    let pgid =
        db::blocking(move || Ok(recorded.filter(|pgid| process::group_belongs_to(*pgid, &id))))
            .await
            .unwrap_or(None);
    let left = process::stop(pgid, Some(&queue.id), grace).await;
    if !left.is_empty() {
        tracing::error!(?left, "processes of the lost queue survived SIGKILL");
    }
    // The end is recorded already (by `mark_lost`); the lost queue's tree
    // is its slot's, cleaned by that slot's next checkout.
    let flushed = async {
        timeline.flush().await;
        true
    };
    // On PostgreSQL the farm's copy of the logs is the database's.
    let db_logs = ctx.postgres().then(|| workspace::DbLogs {
        shipper: None,
        fence: None,
        keep_local: ctx.config.worker.keep_workspace,
        shutdown: watch::channel(false).1,
    });
    workspace::end_queue(&ctx.home, &ctx.db, &queue.id, None, None, flushed, db_logs).await;
}
