//! The JSON types of the REST API, re-exported from `testarena-wire` (which
//! the CLI uses without the database and git), and their conversions from
//! database rows, so a handler only calls `Queue::from(&detail)`.

use chrono::{DateTime, NaiveDateTime, Utc};
pub use testarena_wire::api::*;

use crate::models::{
    AttemptRow, QueueDetail, QueueRow, TaskRow, TestCaseRow, TokenRow, UserRow, WorkerRow,
};

fn utc(t: NaiveDateTime) -> DateTime<Utc> {
    t.and_utc()
}

impl From<&TestCaseRow> for TestResult {
    fn from(row: &TestCaseRow) -> Self {
        Self {
            name: row.name.clone(),
            status: row.status(),
            duration_ms: row.duration_ms,
            message: row.message.clone(),
            // Filled by the history store when a queue's detail is read.
            known_flaky: false,
            new_failure: false,
            baseline_ms: None,
        }
    }
}

/// A task with its test cases.
pub fn task(task: &TaskRow, cases: &[TestCaseRow]) -> Task {
    Task {
        id: task.id.clone(),
        queue_id: task.queue_id.clone(),
        scenario: task.scenario.clone(),
        status: task.status(),
        status_reason: task.status_reason.clone(),
        passed: task.passed,
        failed: task.failed,
        skipped: task.skipped,
        started_at: task.started_at.map(utc),
        finished_at: task.finished_at.map(utc),
        tests: cases.iter().map(TestResult::from).collect(),
        only: task.only(),
    }
}

/// A queue with the given tasks.
pub fn queue<'a>(
    q: &QueueRow,
    tasks: impl IntoIterator<Item = (&'a TaskRow, &'a [TestCaseRow])>,
) -> Queue {
    Queue {
        id: q.id.clone(),
        status: q.status(),
        status_reason: q.status_reason.clone(),
        repo: q.repo.clone(),
        branch: q.branch.clone(),
        commit: q.commit_sha.clone(),
        target: q.target.clone(),
        owner: q.owner.clone(),
        priority: q.priority,
        timeout_s: q.timeout_s,
        created_at: utc(q.created_at),
        started_at: q.started_at.map(utc),
        finished_at: q.finished_at.map(utc),
        position: None,
        worker: q.worker_id.clone(),
        board: q.board.clone(),
        board_tags: crate::store::boards::split_tags(q.board_tags.as_deref()),
        ran_on: q.ran_on.clone(),
        waiting_for: None,
        attempt: q.attempt,
        attempts: Vec::new(),
        no_cache: q.no_cache,
        triggered_by: q.triggered_by.clone(),
        tasks: tasks.into_iter().map(|(t, cases)| task(t, cases)).collect(),
    }
}

impl From<&QueueDetail> for Queue {
    fn from(d: &QueueDetail) -> Self {
        let mut json = queue(&d.queue, d.tasks.iter().map(|(t, c)| (t, c.as_slice())));
        json.attempts = d.attempts.iter().map(Attempt::from).collect();
        json
    }
}

impl From<&AttemptRow> for Attempt {
    fn from(a: &AttemptRow) -> Self {
        Self {
            attempt: a.attempt,
            worker: a.worker.clone(),
            ran_on: a.ran_on.clone().unwrap_or_else(|| "qemu".to_owned()),
            started_at: a.started_at.map(utc),
            finished_at: utc(a.finished_at),
            status: a.status(),
            reason: a.reason.clone(),
        }
    }
}

/// A worker as health shows it, with the queues it runs now.
pub fn worker_info(w: &WorkerRow, running: Vec<String>) -> WorkerInfo {
    WorkerInfo {
        id: w.id.clone(),
        slots: w.slots,
        last_seen: utc(w.last_seen),
        running,
    }
}

impl From<&UserRow> for User {
    fn from(u: &UserRow) -> Self {
        Self {
            id: u.id,
            username: u.username.clone(),
            is_admin: u.is_admin,
            disabled: u.disabled,
            created_at: utc(u.created_at),
        }
    }
}

impl From<&TokenRow> for Token {
    fn from(t: &TokenRow) -> Self {
        Self {
            id: t.id,
            user_id: t.user_id,
            name: t.name.clone(),
            prefix: t.prefix.clone(),
            created_at: utc(t.created_at),
            last_used_at: t.last_used_at.map(utc),
        }
    }
}
