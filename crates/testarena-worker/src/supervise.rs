//! Runs one child of a queue to its end under every limit: the test's
//! timeout and quiet-timeout, the queue's deadline, a user's abort (polled
//! from the database every [`ABORT_POLL`], and at once when PostgreSQL
//! notifies a change of the queue: [`crate::nudge`]) and the worker's
//! shutdown. On PostgreSQL the same poll passes the run's fence: a run the
//! farm ended meanwhile (`worker lost` while this worker was cut off) stops
//! at once, its process group killed without a grace period, and so does a
//! run whose logs could not be shipped within `log_buffer_mib`. The poll runs
//! beside the child, so a database that does not answer never holds up
//! the reading of its output.
//!
//! Whatever ends the child, its whole process group is stopped before
//! [`supervise`] returns (SIGTERM, then SIGKILL after the grace), so nothing
//! a step started outlives the step. Each child's process group id is
//! recorded on the queue when it starts, so that a worker restarted after a
//! crash can kill what is left. It is not cleared after the step (one write
//! per step saved): the next step overwrites it and the queue's end clears
//! it, and the recovery kills a recorded group only while a member of it
//! still carries the queue's id.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use testarena_domain::store;
use testarena_domain::store::logs::Fence;
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::{Instant, sleep_until};

use crate::db::Db;
use crate::process::{self, Child};
use crate::ship::ShipState;
use crate::{Error, Result};

/// How often a running queue's abort request is read from the database.
pub const ABORT_POLL: Duration = Duration::from_millis(300);
/// How long output is still read after the child's group was stopped: the
/// last lines of a crash are worth having, a stuck pipe is not worth waiting
/// for.
const DRAIN: Duration = Duration::from_secs(2);

/// Why a queue must stop now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// A user asked, with this reason.
    Abort(String),
    /// The queue ran past its timeout.
    QueueTimeout,
    /// The worker is shutting down.
    Shutdown,
    /// The farm ended the run meanwhile, for this reason: nothing more of
    /// it may be written.
    Fenced(String),
    /// The queue cannot go on (its logs could not be shipped): it ends
    /// `error` with this reason.
    Failed(String),
}

impl Stop {
    /// The queue's `status_reason` when it ends `aborted` for this.
    pub fn reason(&self) -> &str {
        match self {
            Stop::Abort(reason) => reason,
            Stop::QueueTimeout => "timeout",
            Stop::Shutdown => "worker stopped",
            Stop::Fenced(reason) | Stop::Failed(reason) => reason,
        }
    }
}

/// What a queue's steps watch: the database, the deadline, the shutdown flag.
#[derive(Debug, Clone)]
pub struct Watch {
    pub db: Db,
    pub queue_id: String,
    pub deadline: Instant,
    /// Becomes `true` when the worker shuts down.
    pub shutdown: watch::Receiver<bool>,
    /// Time between SIGTERM and SIGKILL.
    pub grace: Duration,
    /// On PostgreSQL: what the run's writes are conditional on.
    pub fence: Option<Fence>,
    /// On PostgreSQL: the run's log shipper.
    pub ship: Option<ShipState>,
    /// Notified when the database says the queue changed: the abort poll
    /// looks at once ([`crate::nudge`]).
    pub nudge: Arc<Notify>,
}

impl Watch {
    /// Whether the queue must stop now, checking the database once.
    pub async fn check(&self) -> Option<Stop> {
        if *self.shutdown.borrow() {
            return Some(Stop::Shutdown);
        }
        if Instant::now() >= self.deadline {
            return Some(Stop::QueueTimeout);
        }
        self.stop_requested().await
    }

    /// Resolves once the queue must stop, polling the database every
    /// [`ABORT_POLL`]: for steps that run no child (git).
    pub async fn stopped(&self) -> Stop {
        let mut shutdown = self.shutdown.clone();
        let mut poll = tokio::time::interval(ABORT_POLL);
        loop {
            tokio::select! {
                () = shutting_down(&mut shutdown) => return Stop::Shutdown,
                () = sleep_until(self.deadline) => return Stop::QueueTimeout,
                () = self.nudge.notified() => poll.reset_immediately(),
                _ = poll.tick() => {
                    if let Some(stop) = self.stop_requested().await {
                        return stop;
                    }
                }
            }
        }
    }

    /// A user's abort, a fenced run or a log buffer that overflowed.
    async fn stop_requested(&self) -> Option<Stop> {
        if let Some(ship) = &self.ship {
            if let Some(why) = ship.fenced() {
                return Some(Stop::Fenced(why));
            }
            if let Some(reason) = ship.overflow() {
                return Some(Stop::Failed(reason));
            }
        }
        let (id, fence) = (self.queue_id.clone(), self.fence.clone());
        let asked = self.db.run(move |c| {
            if let Some(fence) = &fence {
                fence.check(c)?;
            }
            store::abort_reason(c, &id)
        });
        match asked.await {
            Ok(reason) => reason.map(Stop::Abort),
            Err(Error::Store(store::StoreError::Fenced(why))) => {
                tracing::warn!(reason = %why, "fenced: the farm ended this run; stopping it");
                Some(Stop::Fenced(why))
            }
            Err(e) => {
                // A missed poll is retried at the next one.
                tracing::warn!(error = %e, "cannot read the abort request");
                None
            }
        }
    }
}

/// Resolves once the shutdown flag is set; never if its sender is gone.
pub async fn shutting_down(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Per-step limits, in seconds as the scenario gives them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits {
    pub timeout_s: Option<u64>,
    pub quiet_timeout_s: Option<u64>,
}

/// How a supervised child ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// It exited by itself and its output is read to the end.
    Exited(ExitStatus),
    /// The sink said its work was done (a boot test's verdict).
    Done,
    /// Past the step's `timeout_s`.
    Timeout(u64),
    /// No output for `quiet_timeout_s`.
    Quiet(u64),
    /// The queue must stop.
    Stopped(Stop),
}

/// Exit code of a status, the shell's way: 128 + N for a signal.
pub fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(-1)
}

/// Where a child's output goes.
pub trait Sink {
    /// One piece of output, in order. Returns `true` once the child's work is
    /// done and it should be stopped. Still called for output read after that.
    fn piece(&mut self, bytes: &[u8]) -> impl Future<Output = Result<bool>> + Send;
    /// Called before the child's group is stopped (QEMU's stdin is closed:
    /// a guest blocked reading it ignores SIGTERM otherwise).
    fn close_input(&mut self) {}
}

/// Runs `child` until it ends or a limit hits, feeding its output to `sink`,
/// and stops its whole process group before returning.
pub async fn supervise<S: Sink + Send>(
    watch: &Watch,
    mut child: Child,
    limits: Limits,
    sink: &mut S,
) -> Result<Ended> {
    let pgid = child.pgid;
    // Recorded while the child runs (a short step does not wait for the
    // database), and awaited before the step ends, so that the next step's
    // group is recorded after this one.
    let recorded = tokio::spawn(set_pgid(watch.clone(), pgid));
    let mut output = process::read_output(&mut child.inner);
    let result = run(watch, &mut child, &mut output, limits, sink).await;
    sink.close_input();
    // A fenced run is killed at once: it is no longer this worker's.
    let grace = match &result {
        Ok(Ended::Stopped(Stop::Fenced(_))) | Err(Error::Store(store::StoreError::Fenced(_))) => {
            Duration::ZERO
        }
        _ => watch.grace,
    };
    let left = process::stop(Some(pgid), None, grace).await;
    if !left.is_empty() {
        tracing::error!(pgid, ?left, "processes survived SIGKILL");
    }
    drain(&mut output, sink).await;
    // Reaped, so that no zombie is left; it is dead or dying by now.
    let _ = tokio::time::timeout(DRAIN, child.inner.wait()).await;
    let _ = recorded.await;
    result
}

async fn run<S: Sink + Send>(
    watch: &Watch,
    child: &mut Child,
    output: &mut mpsc::Receiver<Vec<u8>>,
    limits: Limits,
    sink: &mut S,
) -> Result<Ended> {
    let started = Instant::now();
    let far = started + Duration::from_secs(86_400 * 365);
    let deadline = limits
        .timeout_s
        .map_or(far, |s| started + Duration::from_secs(s));
    let quiet = limits.quiet_timeout_s.map(Duration::from_secs);
    let mut last_output = started;
    // The first look is a poll period in: the caller looked just before.
    let mut poll = tokio::time::interval_at(started + ABORT_POLL, ABORT_POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shutdown = watch.shutdown.clone();
    let mut exit: Option<ExitStatus> = None;
    let mut output_open = true;
    // The poll in flight, if any: it runs beside the child.
    let mut asking: Option<tokio::task::JoinHandle<Option<Stop>>> = None;
    loop {
        if let (Some(status), false) = (exit, output_open) {
            return Ok(Ended::Exited(status));
        }
        let quiet_deadline = quiet.map_or(far, |q| last_output + q);
        tokio::select! {
            piece = output.recv(), if output_open => match piece {
                Some(bytes) => {
                    last_output = Instant::now();
                    if sink.piece(&bytes).await? {
                        return Ok(Ended::Done);
                    }
                }
                None => output_open = false,
            },
            status = child.inner.wait(), if exit.is_none() => {
                let status = status.map_err(|e| Error::Spawn {
                    program: child.program.clone(),
                    source: e,
                })?;
                exit = Some(status);
                if output_open {
                    // Something the child left behind holds its output open
                    // (`sleep 600 &`): the step is over, and so is the rest
                    // of its group.
                    process::stop(Some(child.pgid), None, watch.grace).await;
                    if tokio::time::timeout(DRAIN, drain(output, sink)).await.is_err() {
                        output_open = false;
                    }
                }
            },
            () = sleep_until(deadline) => {
                return Ok(Ended::Timeout(limits.timeout_s.unwrap_or_default()));
            },
            () = sleep_until(quiet_deadline), if exit.is_none() => {
                return Ok(Ended::Quiet(limits.quiet_timeout_s.unwrap_or_default()));
            },
            () = sleep_until(watch.deadline) => return Ok(Ended::Stopped(Stop::QueueTimeout)),
            () = shutting_down(&mut shutdown) => return Ok(Ended::Stopped(Stop::Shutdown)),
            // Looked at once, or right after the look in flight (which may
            // have read the queue before the change).
            () = watch.nudge.notified() => poll.reset_immediately(),
            _ = poll.tick(), if asking.is_none() => {
                let watch = watch.clone();
                asking = Some(tokio::spawn(async move { watch.stop_requested().await }));
            },
            answer = answer(&mut asking), if asking.is_some() => {
                asking = None;
                if let Some(stop) = answer {
                    return Ok(Ended::Stopped(stop));
                }
            },
        }
    }
}

/// The answer of the poll in flight; never resolves without one.
async fn answer(asking: &mut Option<tokio::task::JoinHandle<Option<Stop>>>) -> Option<Stop> {
    match asking {
        Some(handle) => handle.await.ok().flatten(),
        None => std::future::pending().await,
    }
}

/// Reads what is left of the output into the sink, for at most [`DRAIN`].
async fn drain<S: Sink + Send>(output: &mut mpsc::Receiver<Vec<u8>>, sink: &mut S) {
    let until = Instant::now() + DRAIN;
    while let Ok(Some(bytes)) = tokio::time::timeout_at(until, output.recv()).await {
        if let Err(e) = sink.piece(&bytes).await {
            tracing::warn!(error = %e, "output lost while stopping");
            return;
        }
    }
    output.close();
}

async fn set_pgid(watch: Watch, pgid: i32) {
    let id = watch.queue_id.clone();
    if let Err(e) = watch
        .db
        .run_fenced(watch.fence.as_ref(), move |c| {
            store::set_pgid(c, &id, Some(pgid))
        })
        .await
    {
        tracing::warn!(error = %e, pgid, "cannot record the process group");
    }
}
