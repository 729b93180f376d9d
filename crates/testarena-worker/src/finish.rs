//! The end of a queue's run: a last sweep for its processes, then its
//! files around the recording of its verdict, the end stored (tried again
//! while the database is full, busy or, on PostgreSQL, unreachable), and
//! for a fenced run nothing stored at all.

use std::path::PathBuf;
use std::time::Duration;

use testarena_domain::store::{self, EndOutcome, QueueEnd};

use crate::Error;
use crate::db;
use crate::logfile::Timeline;
use crate::process;
use crate::runner::Context;
use crate::ship::Shipper;
use crate::supervise::{self, Watch};
use crate::verdict::End;
use crate::workspace::{self, DbLogs, Lease};

/// Pause between attempts to store a queue's end in a database that is
/// full or busy.
const RECORD_RETRY: Duration = Duration::from_secs(1);
/// How long a stopping worker waits for a queue's end to be stored on
/// PostgreSQL before it gives up on an unreachable database.
const STOPPING_WRITE: Duration = Duration::from_secs(1);

/// What [`finish`] ends.
pub(crate) struct Ending<'a> {
    pub queue_id: &'a str,
    pub watch: &'a Watch,
    pub timeline: &'a Timeline,
    pub build_dir: Option<PathBuf>,
    pub shipper: Option<Shipper>,
}

/// Ends the queue: a last sweep for its processes, then its files around
/// the recording of its verdict ([`workspace::end_queue`]: the build
/// directory first, unless `keep_workspace`; the timeline's last line; the
/// end; the slot given back; on PostgreSQL the logs shipped to the end;
/// `junit.xml`). A fenced run records nothing: its processes are killed
/// at once, its shipper stopped, its slot given back and its files removed.
pub(crate) async fn finish(ctx: &Context, ending: Ending<'_>, lease: Lease, end: &End) {
    let Ending {
        queue_id,
        watch,
        timeline,
        build_dir,
        shipper,
    } = ending;
    let (status, reason) = (end.status, end.reason.as_str());
    let keep = ctx.config.worker.keep_workspace;
    if end.fenced {
        tracing::warn!(
            reason,
            "fenced: the farm ended this run meanwhile; its processes are killed and nothing more of it is written"
        );
        process::stop(None, Some(queue_id), Duration::ZERO).await;
        if let Some(shipper) = shipper {
            shipper.abandon().await;
        }
        drop(lease);
        timeline.flush().await;
        if !keep {
            if let Some(build_dir) = build_dir
                && let Err(e) = db::blocking(move || workspace::remove_dir(&build_dir)).await
            {
                tracing::error!(error = %e, "cannot remove the build directory");
            }
            workspace::remove_queue_dir(&ctx.home, queue_id).await;
        }
        return;
    }
    let left = process::stop(None, Some(queue_id), watch.grace).await;
    if !left.is_empty() {
        tracing::error!(?left, "processes of the queue survived SIGKILL");
    }
    let build_dir = build_dir.filter(|_| !keep);
    let db_logs = watch.fence.clone().map(|fence| DbLogs {
        shipper,
        fence: Some(fence),
        keep_local: keep,
        shutdown: watch.shutdown.clone(),
    });
    let record = async {
        let suffix = if reason.is_empty() {
            String::new()
        } else {
            format!(": {reason}")
        };
        let recorded = record_end(ctx, queue_id, watch, end).await;
        match &recorded {
            Some(EndOutcome::Retried(row)) => timeline.line(&format!(
                "attempt {} ended {status}{suffix}; {}",
                row.attempt - 1,
                row.status_reason.as_deref().unwrap_or("retrying")
            )),
            Some(_) => timeline.line(&format!("finished {status}{suffix}")),
            None if watch.fence.is_some() => {}
            None => timeline.line(&format!("finished {status}{suffix}")),
        }
        timeline.flush().await;
        recorded.is_some()
    };
    let recorded = workspace::end_queue(
        &ctx.home,
        &ctx.db,
        queue_id,
        build_dir,
        Some(lease),
        record,
        db_logs,
    )
    .await;
    if recorded {
        tracing::info!(%status, reason, "queue finished");
    }
}

/// Stores the queue's end (or, for a farm failure with attempts left, the
/// end of its attempt: the queue waits for the next). A database that is
/// full (or stays busy) is tried again every [`RECORD_RETRY`] until it
/// takes the write or the worker stops: a verdict that was never stored
/// would leave the queue `running` until some worker declared it lost. On
/// PostgreSQL the end passes the run's fence and waits out an outage.
/// Returns what was stored.
async fn record_end(ctx: &Context, queue_id: &str, watch: &Watch, end: &End) -> Option<EndOutcome> {
    let mut shutdown = watch.shutdown.clone();
    let mut warned = false;
    let (status, farm_failure) = (end.status, end.farm_failure);
    let retry_errors = ctx.config.worker.retry_errors;
    loop {
        let (id, r) = (queue_id.to_owned(), end.reason.clone());
        let recorded = ctx.db.run_fenced(watch.fence.as_ref(), move |c| {
            let end = QueueEnd {
                status,
                reason: &r,
                farm_failure,
            };
            store::end_queue(c, &id, end, retry_errors)
        });
        // A stopping worker (often why the queue ends: `worker stopped`)
        // still gives the write a moment: only a database that does not
        // answer within it leaves the end unrecorded.
        let given_up = async {
            supervise::shutting_down(&mut shutdown).await;
            tokio::time::sleep(STOPPING_WRITE).await;
        };
        let recorded = tokio::select! {
            recorded = recorded => recorded,
            () = given_up, if watch.fence.is_some() => {
                tracing::error!(%status, "worker stopping while the database is unreachable: the queue's end is not recorded");
                return None;
            }
        };
        match recorded {
            Ok(outcome) => return Some(outcome),
            Err(Error::Store(e @ (store::StoreError::Full(_) | store::StoreError::Busy(_)))) => {
                if !warned {
                    tracing::error!(error = %e, %status, "cannot record the queue's end yet; trying again");
                    warned = true;
                }
            }
            Err(Error::Store(store::StoreError::Fenced(why))) => {
                tracing::warn!(reason = %why, %status, "fenced: the farm ended this run meanwhile; its end is not recorded");
                return None;
            }
            // Another worker may have declared this one lost meanwhile.
            Err(e) => {
                tracing::error!(error = %e, %status, "cannot record the queue's end");
                return None;
            }
        }
        tokio::select! {
            () = tokio::time::sleep(RECORD_RETRY) => {}
            () = supervise::shutting_down(&mut shutdown) => {
                tracing::error!(%status, "worker stopping: the queue's end is not recorded");
                return None;
            }
        }
    }
}
