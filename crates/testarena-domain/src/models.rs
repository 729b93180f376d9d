//! Rows of the database, as Diesel reads and writes them.
//!
//! These are storage types: the JSON the API speaks lives in [`crate::api`],
//! and [`crate::api`] converts from these.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::schema::{api_tokens, attempts, queues, tasks, test_cases, users, workers};
use crate::status::Status;

/// A queue row. `status` is kept as text in the row; [`QueueRow::status`]
/// parses it.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = queues, primary_key(seq), check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct QueueRow {
    pub seq: i32,
    pub id: String,
    pub status: String,
    pub status_reason: Option<String>,
    pub repo: String,
    pub branch: String,
    pub commit_sha: Option<String>,
    pub target: String,
    pub owner: String,
    pub priority: i32,
    pub timeout_s: Option<i32>,
    pub created_at: NaiveDateTime,
    pub started_at: Option<NaiveDateTime>,
    pub finished_at: Option<NaiveDateTime>,
    pub worker_id: Option<String>,
    pub abort_reason: Option<String>,
    pub pgid: Option<i32>,
    /// Which attempt this is, from 1 (DESIGN section 11, "Attempts").
    pub attempt: i32,
    /// Build even when the worker's build cache holds this build.
    pub no_cache: bool,
    /// `None`: QEMU; `any` or a board id (DESIGN section 10).
    pub board: Option<String>,
    /// Tags the board must have: sorted, comma-separated.
    pub board_tags: Option<String>,
    /// Set at claim: `qemu` or the board's id.
    pub ran_on: Option<String>,
    /// The forge user whose push made it (DESIGN section 12).
    pub triggered_by: Option<String>,
}

/// A queue to create (its tasks come separately).
#[derive(Debug, Clone, PartialEq, Insertable)]
#[diesel(table_name = queues)]
pub struct NewQueue {
    pub id: String,
    pub repo: String,
    pub branch: String,
    /// The commit the branch resolved to at submission; the worker checks
    /// out exactly this one. `None` only for rows made without the app.
    pub commit_sha: Option<String>,
    pub target: String,
    pub owner: String,
    pub priority: i32,
    pub timeout_s: Option<i32>,
    pub created_at: NaiveDateTime,
    /// Build even when the worker's build cache holds this build.
    pub no_cache: bool,
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = tasks, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct TaskRow {
    pub id: String,
    pub queue_id: String,
    pub position: i32,
    pub scenario: String,
    pub status: String,
    pub status_reason: Option<String>,
    pub passed: i32,
    pub failed: i32,
    pub skipped: i32,
    pub started_at: Option<NaiveDateTime>,
    pub finished_at: Option<NaiveDateTime>,
    /// The `<test>` names it runs, a JSON list; `None`: all of them
    /// (DESIGN section 11, "Rerun and subsets"). Read it with [`TaskRow::only`].
    #[diesel(column_name = only)]
    pub only_json: Option<String>,
}

/// A task to create: its id, the scenario it runs and, for a subset, the
/// names of the `<test>` elements it runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewTask {
    pub id: String,
    pub scenario: String,
    pub only: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = test_cases, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct TestCaseRow {
    pub id: i32,
    pub task_id: String,
    pub name: String,
    pub status: String,
    pub duration_ms: Option<i32>,
    pub message: Option<String>,
}

/// A test result to record: a scenario's `<test>` or a Unity case in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTestCase {
    pub name: String,
    /// `passed`, `failed`, `error` or `skipped`.
    pub status: Status,
    pub duration_ms: Option<u64>,
    pub message: Option<String>,
}

#[derive(Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = users, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct UserRow {
    pub id: i32,
    pub username: String,
    pub password_hash: String,
    pub is_admin: bool,
    pub disabled: bool,
    pub created_at: NaiveDateTime,
}

impl std::fmt::Debug for UserRow {
    /// Leaves the password hash out, so a logged user leaks nothing.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRow")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("is_admin", &self.is_admin)
            .field("disabled", &self.disabled)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = api_tokens, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct TokenRow {
    pub id: i32,
    pub user_id: i32,
    pub name: String,
    pub token_hash: String,
    pub prefix: String,
    pub created_at: NaiveDateTime,
    pub last_used_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable, Insertable)]
#[diesel(table_name = workers, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct WorkerRow {
    pub id: String,
    pub slots: i32,
    pub version: String,
    pub pid: i32,
    pub started_at: NaiveDateTime,
    pub last_seen: NaiveDateTime,
}

/// An earlier attempt of a queue, ended by a farm failure and retried.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = attempts, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct AttemptRow {
    pub id: i32,
    pub queue_id: String,
    pub attempt: i32,
    pub worker: Option<String>,
    /// `None`: QEMU; otherwise the board it ran on.
    pub ran_on: Option<String>,
    pub started_at: Option<NaiveDateTime>,
    pub finished_at: NaiveDateTime,
    pub status: String,
    pub reason: Option<String>,
    /// JSON: the attempt's tasks with their test cases, as they were.
    pub results: String,
}

/// A queue with its tasks and each task's test cases, in order, and its
/// earlier attempts, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueDetail {
    pub queue: QueueRow,
    pub tasks: Vec<(TaskRow, Vec<TestCaseRow>)>,
    pub attempts: Vec<AttemptRow>,
}

pub(crate) fn parse_status(text: &str) -> Status {
    // The CHECK constraints keep unknown names out of the tables.
    text.parse().unwrap_or(Status::Error)
}

impl QueueRow {
    pub fn status(&self) -> Status {
        parse_status(&self.status)
    }
}

impl NewTask {
    /// `only` as stored: a JSON list, or `None`.
    pub fn only_json(&self) -> Option<String> {
        self.only
            .as_ref()
            .map(|names| serde_json::Value::from(names.clone()).to_string())
    }
}

impl TaskRow {
    pub fn status(&self) -> Status {
        parse_status(&self.status)
    }

    /// The `<test>` names this task runs; `None`: every test of its scenario.
    pub fn only(&self) -> Option<Vec<String>> {
        // Written by the store from a list; a row that says otherwise runs everything.
        self.only_json
            .as_deref()
            .and_then(|j| serde_json::from_str(j).ok())
    }

    /// Whether this task runs the scenario's `<test name=...>`.
    pub fn runs(&self, test: &str) -> bool {
        self.only()
            .is_none_or(|names| names.iter().any(|n| n == test))
    }
}

impl AttemptRow {
    pub fn status(&self) -> Status {
        parse_status(&self.status)
    }
}

impl TestCaseRow {
    pub fn status(&self) -> Status {
        parse_status(&self.status)
    }
}
