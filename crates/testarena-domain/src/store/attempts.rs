//! The end of a queue's run and its attempts (DESIGN section 11,
//! "Attempts"): a run that ended `error` for a farm reason (the worker
//! lost, QEMU or a board at fault, a clone or fetch that failed, a full
//! disk) with attempts left goes back to `waiting` with `attempt` + 1
//! instead of ending; everything else ends the queue as before.
//!
//! The retry is one immediate transaction: the attempt that ended is
//! recorded in `attempts` (its worker, where it ran, its times, status and
//! reason, and its tasks with their test cases as JSON), the tasks are
//! reset to `waiting` with no test cases for the next attempt, and the
//! queue moves `running` → `waiting` through [`status::retry`], the only
//! function that allows it. The worker's end of a queue ([`end_queue`])
//! and the recovery of a lost one ([`mark_lost`]) both go through it.

use std::time::Duration;

use crate::db::DbConnection;
use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::queues::{detail_of, finish_queue_in, require_queue};
use super::{StoreResult, now};
use crate::models::{AttemptRow, QueueRow};
use crate::schema::{attempts, queues, tasks, test_cases, workers};
use crate::status::{self, Kind, Status};

/// The most `retry_errors` the config allows: at most four attempts.
pub const MAX_RETRY_ERRORS: u32 = 3;

/// How a queue's run ended, as its worker reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueEnd<'a> {
    pub status: Status,
    pub reason: &'a str,
    /// The farm failed, not the code (the worker, QEMU or a board, git, the
    /// disk): an `error` with this flag is retried while attempts are
    /// left. A build or test failure, a bad scenario, an abort or a
    /// timeout never set it.
    pub farm_failure: bool,
}

/// What [`end_queue`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum EndOutcome {
    /// The queue ended with this final row.
    Finished(QueueRow),
    /// The attempt ended and the queue waits for its next one (this row).
    Retried(QueueRow),
}

impl EndOutcome {
    pub fn row(&self) -> &QueueRow {
        match self {
            EndOutcome::Finished(row) | EndOutcome::Retried(row) => row,
        }
    }
}

/// Ends a running queue's attempt: retried when `end` is a farm failure
/// and `retry_errors` allows another attempt (and no abort was asked for),
/// finished otherwise (like [`super::finish_queue`]).
pub fn end_queue(
    conn: &mut DbConnection,
    id: &str,
    end: QueueEnd<'_>,
    retry_errors: u32,
) -> StoreResult<EndOutcome> {
    crate::db::write(conn, |conn| {
        let q = require_queue(conn, id)?;
        end_in(conn, q, end, retry_errors)
    })
}

fn end_in(
    conn: &mut DbConnection,
    q: QueueRow,
    end: QueueEnd<'_>,
    retry_errors: u32,
) -> StoreResult<EndOutcome> {
    if retries(&q, end, retry_errors) {
        retry_in(conn, q, end, retry_errors).map(EndOutcome::Retried)
    } else {
        finish_queue_in(conn, q, end.status, end.reason).map(EndOutcome::Finished)
    }
}

/// Whether this end of `q`'s attempt is retried.
fn retries(q: &QueueRow, end: QueueEnd<'_>, retry_errors: u32) -> bool {
    let allowed = i64::from(retry_errors.min(MAX_RETRY_ERRORS));
    end.farm_failure
        && end.status == Status::Error
        && q.status() == Status::Running
        && q.abort_reason.is_none()
        && i64::from(q.attempt) <= allowed
}

/// The queue's `status_reason` while it waits for its next attempt.
pub fn retry_reason(reason: &str, next: i32, of: u32) -> String {
    format!("retrying after: {reason} (attempt {next} of {of})")
}

fn retry_in(
    conn: &mut DbConnection,
    q: QueueRow,
    end: QueueEnd<'_>,
    retry_errors: u32,
) -> StoreResult<QueueRow> {
    let to = status::retry(Kind::Queue, q.status())?;
    let at = now();
    let detail = detail_of(conn, q.clone())?;
    let results: Vec<_> = detail
        .tasks
        .iter()
        .map(|(t, cases)| crate::api::task(t, cases))
        .collect();
    let results = serde_json::to_string(&results).unwrap_or_else(|_| "[]".to_owned());
    let reason = (!end.reason.is_empty()).then_some(end.reason);
    diesel::insert_into(attempts::table)
        .values((
            attempts::queue_id.eq(&q.id),
            attempts::attempt.eq(q.attempt),
            attempts::worker.eq(&q.worker_id),
            attempts::ran_on.eq(&q.ran_on),
            attempts::started_at.eq(q.started_at),
            attempts::finished_at.eq(at),
            attempts::status.eq(end.status.as_str()),
            attempts::reason.eq(reason),
            attempts::results.eq(results),
        ))
        .execute(conn)?;
    let task_ids = tasks::table
        .filter(tasks::queue_id.eq(&q.id))
        .select(tasks::id);
    diesel::delete(test_cases::table.filter(test_cases::task_id.eq_any(task_ids))).execute(conn)?;
    diesel::update(tasks::table.filter(tasks::queue_id.eq(&q.id)))
        .set((
            tasks::status.eq(Status::Waiting.as_str()),
            tasks::status_reason.eq(None::<String>),
            tasks::passed.eq(0),
            tasks::failed.eq(0),
            tasks::skipped.eq(0),
            tasks::started_at.eq(None::<NaiveDateTime>),
            tasks::finished_at.eq(None::<NaiveDateTime>),
        ))
        .execute(conn)?;
    // The board goes back in the transaction that records the attempt.
    super::boards::release(conn, &q, to)?;
    let next = q.attempt + 1;
    let of = retry_errors.min(MAX_RETRY_ERRORS) + 1;
    Ok(per_backend!(conn, |c| diesel::update(
        queues::table.filter(queues::id.eq(&q.id))
    )
    .set((
        queues::status.eq(to.as_str()),
        queues::status_reason.eq(retry_reason(end.reason, next, of)),
        queues::attempt.eq(next),
        queues::started_at.eq(None::<NaiveDateTime>),
        queues::finished_at.eq(None::<NaiveDateTime>),
        queues::worker_id.eq(None::<String>),
        queues::pgid.eq(None::<i32>),
        queues::ran_on.eq(None::<String>),
    ))
    .returning(QueueRow::as_returning())
    .get_result(c))?)
}

/// A queue's earlier attempts, oldest first.
pub fn attempts_of(conn: &mut DbConnection, queue_id: &str) -> StoreResult<Vec<AttemptRow>> {
    Ok(attempts::table
        .filter(attempts::queue_id.eq(queue_id))
        .order(attempts::attempt)
        .select(AttemptRow::as_select())
        .load(conn)?)
}

/// A queue [`mark_lost`] took from its worker.
#[derive(Debug, Clone, PartialEq)]
pub struct LostQueue {
    /// The row as it was (its `pgid`, `attempt`, `worker_id`), so the
    /// caller can kill what is left of its processes.
    pub queue: QueueRow,
    /// Whether it waits for another attempt (`false`: it ended `error`).
    pub retried: bool,
}

/// Ends lost queues' attempts with "worker lost", a farm failure (retried
/// while `retry_errors` allows), in one transaction. A queue is lost when
/// it runs on a worker whose heartbeat is older than `lost_after` (or that
/// is not registered), or on worker `me` but was started before
/// `me_started` (an earlier run of the same worker id).
pub fn mark_lost(
    conn: &mut DbConnection,
    me: &str,
    me_started: NaiveDateTime,
    lost_after: Duration,
    retry_errors: u32,
) -> StoreResult<Vec<LostQueue>> {
    crate::db::write(conn, |conn| {
        // Heartbeats are on the database's clock: so is their age.
        let stale_before = crate::db::db_now(conn)?
            - chrono::Duration::from_std(lost_after).unwrap_or(chrono::Duration::MAX);
        let live: Vec<String> = workers::table
            .filter(workers::last_seen.ge(stale_before))
            .select(workers::id)
            .load(conn)?;
        let running: Vec<QueueRow> = queues::table
            .filter(queues::status.eq(Status::Running.as_str()))
            .select(QueueRow::as_select())
            .load(conn)?;
        let mut lost = Vec::new();
        for q in running {
            let is_lost = match q.worker_id.as_deref() {
                Some(w) if w == me => q.started_at.is_none_or(|s| s < me_started),
                Some(w) => !live.iter().any(|l| l == w),
                None => true,
            };
            if is_lost {
                let end = QueueEnd {
                    status: Status::Error,
                    reason: "worker lost",
                    farm_failure: true,
                };
                let outcome = end_in(conn, q.clone(), end, retry_errors)?;
                // Its board, released above, is checked before its next user queue.
                super::boards::lost(conn, &q)?;
                lost.push(LostQueue {
                    queue: q,
                    retried: matches!(outcome, EndOutcome::Retried(_)),
                });
            }
        }
        Ok(lost)
    })
}
