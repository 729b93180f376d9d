//! Rows of the database, as Diesel reads and writes them.
//!
//! These are storage types: the JSON the API speaks lives in [`crate::api`],
//! and [`crate::api`] converts from these.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::schema::{api_tokens, queues, tasks, test_cases, users, workers};
use crate::status::Status;

/// A queue row. `status` is kept as text in the row; [`QueueRow::status`]
/// parses it.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = queues, primary_key(seq), check_for_backend(diesel::sqlite::Sqlite))]
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
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = tasks, check_for_backend(diesel::sqlite::Sqlite))]
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
}

/// A task to create: its id and the scenario it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTask {
    pub id: String,
    pub scenario: String,
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = test_cases, check_for_backend(diesel::sqlite::Sqlite))]
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
#[diesel(table_name = users, check_for_backend(diesel::sqlite::Sqlite))]
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
#[diesel(table_name = api_tokens, check_for_backend(diesel::sqlite::Sqlite))]
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
#[diesel(table_name = workers, check_for_backend(diesel::sqlite::Sqlite))]
pub struct WorkerRow {
    pub id: String,
    pub slots: i32,
    pub version: String,
    pub pid: i32,
    pub started_at: NaiveDateTime,
    pub last_seen: NaiveDateTime,
}

/// A queue with its tasks and each task's test cases, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueDetail {
    pub queue: QueueRow,
    pub tasks: Vec<(TaskRow, Vec<TestCaseRow>)>,
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

impl TaskRow {
    pub fn status(&self) -> Status {
        parse_status(&self.status)
    }
}

impl TestCaseRow {
    pub fn status(&self) -> Status {
        parse_status(&self.status)
    }
}
