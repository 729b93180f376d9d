//! The JSON types of the REST API (DESIGN section 6), shared by the app, the
//! CLI and the tests so that all three agree on one definition.
//!
//! Times are RFC 3339 in UTC. Conversions from database rows live in the
//! domain crate (`testarena_domain::api`), which re-exports these types.
//!
//! Every type derives `ToSchema` for the app's OpenAPI document. A response
//! field that is always sent but may be `null` is marked `required`; one
//! that is left out when unknown (`skip_serializing_if`) is optional and
//! never `null`.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

pub use crate::attempts::Attempt;
pub use crate::boards::{Board, BoardDetail, BoardHealth, BoardQueue, BoardStatus, UpdateBoard};
pub use crate::forge::{Delivery, HookReceipt, HookRecord};
pub use crate::history::{
    Comparison, LastFailure, MAX_RERUN_COUNT, Rerun, RerunRequest, ScenarioEntry, ScenarioSubset,
    SlowerTest, TestRef, TestRun, TestSummary,
};
use crate::status::Status;

/// A queue with its tasks and their tests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Queue {
    pub id: String,
    pub status: Status,
    /// Why it ended as it did, in words; `null` until then.
    #[schema(required)]
    pub status_reason: Option<String>,
    pub repo: String,
    pub branch: String,
    /// The commit (40 hex digits) the queue runs: the branch's tip when it
    /// was submitted, or the `commit` the submission named. `null` only for
    /// queues stored before commits were pinned, until a worker ran them.
    #[schema(required)]
    pub commit: Option<String>,
    pub target: String,
    pub owner: String,
    pub priority: i32,
    /// `null`: the worker's `queue_timeout_s`.
    #[schema(required)]
    pub timeout_s: Option<i32>,
    pub created_at: DateTime<Utc>,
    #[schema(required)]
    pub started_at: Option<DateTime<Utc>>,
    #[schema(required)]
    pub finished_at: Option<DateTime<Utc>>,
    /// A waiting queue's place in line, 1 = next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, minimum = 1)]
    pub position: Option<i64>,
    /// The worker that runs or ran it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub worker: Option<String>,
    /// The board it asked for: `any` or a board id; `null`: QEMU.
    #[serde(default)]
    #[schema(required)]
    pub board: Option<String>,
    /// Tags every board that runs it must have, as asked.
    #[serde(default)]
    pub board_tags: Vec<String>,
    /// Where it ran: `qemu` or the board's id; `null` until claimed.
    #[serde(default)]
    #[schema(required)]
    pub ran_on: Option<String>,
    /// While a board queue waits: what it waits for, in words (`a board
    /// with tags wifi: 2 busy, 1 bad`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub waiting_for: Option<String>,
    /// Which attempt this is, from 1: a farm failure retried adds one.
    #[serde(default = "first_attempt")]
    pub attempt: i32,
    /// The earlier attempts, oldest first.
    #[serde(default)]
    pub attempts: Vec<Attempt>,
    /// Built even when the worker's build cache held this build.
    #[serde(default)]
    pub no_cache: bool,
    /// The forge user whose push started it (the owner is then the farm's
    /// own `testarena`); `null` for queues submitted by a user.
    #[serde(default)]
    #[schema(required)]
    pub triggered_by: Option<String>,
    pub tasks: Vec<Task>,
}

fn first_attempt() -> i32 {
    1
}

/// A task: one scenario of a queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Task {
    pub id: String,
    pub queue_id: String,
    pub scenario: String,
    pub status: Status,
    #[schema(required)]
    pub status_reason: Option<String>,
    /// Passed results.
    pub passed: i32,
    /// Failed and error results.
    pub failed: i32,
    /// Skipped results.
    pub skipped: i32,
    #[schema(required)]
    pub started_at: Option<DateTime<Utc>>,
    #[schema(required)]
    pub finished_at: Option<DateTime<Utc>>,
    /// Empty in queue lists; filled in a single queue or task.
    pub tests: Vec<TestResult>,
    /// The `<test>` names it runs (a subset of its scenario); absent: all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub only: Option<Vec<String>>,
}

/// One test result: a scenario's `<test>`, or a Unity case `<test>/<NAME>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TestResult {
    pub name: String,
    pub status: Status,
    #[schema(required)]
    pub duration_ms: Option<i32>,
    /// The failure class, e.g. `timeout after 30 s`.
    #[schema(required)]
    pub message: Option<String>,
    /// The test is flaky (DESIGN section 11, "Flaky, new, slower").
    #[serde(default)]
    pub known_flaky: bool,
    /// It failed, and its previous run on this repository, branch and
    /// target passed.
    #[serde(default)]
    pub new_failure: bool,
    /// The median of its last 20 passing runs before this one; `null`: none.
    #[serde(default)]
    pub baseline_ms: Option<i64>,
}

impl Queue {
    /// Whether the queue has ended.
    pub fn is_final(&self) -> bool {
        self.status.is_final()
    }
}

/// `POST /api/v1/queues`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateQueue {
    pub branch: String,
    /// Run this commit of the branch's history (its full id, or an
    /// abbreviation of at least 7 hex digits) instead of the branch's tip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[0-9a-fA-F]{7,40}$")]
    pub commit: Option<String>,
    /// Scenario paths, or `{"path", "only": [test names]}` to run some of
    /// a scenario's tests; task ids are made up. Either this or `tasks`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_items = 1, max_items = 100)]
    pub scenarios: Option<Vec<ScenarioEntry>>,
    /// `{task_id: scenario path}`, in the given order. Either this or `scenarios`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "ordered_map",
        serialize_with = "serialize_ordered_map"
    )]
    #[schema(value_type = Option<std::collections::BTreeMap<String, String>>)]
    pub tasks: Option<Vec<(String, String)>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Default: `YYYYMMDD-HHMMSS-xxxx`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    pub id: Option<String>,
    /// Higher runs first; default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = -1000, maximum = 1000)]
    pub priority: Option<i32>,
    /// Seconds from start; default: the worker's `queue_timeout_s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 604800)]
    pub timeout_s: Option<i32>,
    /// Run on a board instead of QEMU: `any` (any board of the target) or
    /// a board id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    pub board: Option<String>,
    /// Tags the board must have (implies `board: "any"` when `board` is absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub board_tags: Option<Vec<String>>,
    /// Build even when the worker's build cache holds this build.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_cache: bool,
}

/// Reads a JSON object into ordered pairs, refusing duplicate keys.
fn ordered_map<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<(String, String)>>, D::Error> {
    struct Pairs;
    impl<'de> Visitor<'de> for Pairs {
        type Value = Option<Vec<(String, String)>>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object of task id to scenario path")
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut pairs: Vec<(String, String)> = Vec::new();
            while let Some((k, v)) = map.next_entry::<String, String>()? {
                if pairs.iter().any(|(key, _)| *key == k) {
                    return Err(serde::de::Error::custom(format!("duplicate task id {k:?}")));
                }
                pairs.push((k, v));
            }
            Ok(Some(pairs))
        }
    }
    d.deserialize_any(Pairs)
}

fn serialize_ordered_map<S: serde::Serializer>(
    pairs: &Option<Vec<(String, String)>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let pairs = pairs.as_deref().unwrap_or_default();
    let mut map = s.serialize_map(Some(pairs.len()))?;
    for (k, v) in pairs {
        map.serialize_entry(k, v)?;
    }
    map.end()
}

/// A page of `GET /api/v1/queues`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `before=` for the next page; `null` on the last one.
    #[schema(required)]
    pub next: Option<String>,
}

/// One entry of `GET /api/v1/queues/{id}/logs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LogFile {
    /// Relative to the queue's folder, e.g. `tasks/t1/unit.log`.
    pub path: String,
    pub size: u64,
    pub modified_at: DateTime<Utc>,
}

/// The data of an SSE `log` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LogChunk {
    pub path: String,
    /// The byte offset of the chunk's first byte in the file.
    pub offset: u64,
    /// The byte offset after the chunk's last byte: where to resume (as
    /// `offset` of a ranged read or of `events`). `text` is decoded lossily,
    /// so its length in UTF-8 may differ from `next_offset - offset`.
    pub next_offset: u64,
    pub text: String,
}

/// `GET /api/v1/config`: what a submission form offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ClientConfig {
    /// The configured repositories, the default (a submission that names
    /// none) first.
    pub repos: Vec<NamedItem>,
    /// The configured targets, by name.
    pub targets: Vec<NamedItem>,
    /// The target of a submission that names none.
    pub default_target: String,
}

/// A repository or a target, by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NamedItem {
    pub name: String,
}

/// `GET /api/v1/health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok`, or `degraded` when the database cannot be reached.
    pub status: String,
    /// `ok` or the error.
    pub database: String,
    pub workers: Vec<WorkerInfo>,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WorkerInfo {
    pub id: String,
    pub slots: i32,
    pub last_seen: DateTime<Utc>,
    /// Ids of the queues it runs now.
    pub running: Vec<String>,
}

/// `POST /api/v1/session`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Login")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// A user as the API shows one (never the hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct User {
    pub id: i32,
    pub username: String,
    pub is_admin: bool,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
}

/// `POST /api/v1/users`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    #[schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    pub username: String,
    /// 8 to 1024 bytes, no NUL.
    pub password: String,
    #[serde(default)]
    pub is_admin: bool,
}

/// `PATCH /api/v1/users/{id}`.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_admin: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
}

impl fmt::Debug for CreateUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreateUser")
            .field("username", &self.username)
            .field("is_admin", &self.is_admin)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for UpdateUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpdateUser")
            .field("password", &self.password.as_ref().map(|_| "<set>"))
            .field("is_admin", &self.is_admin)
            .field("disabled", &self.disabled)
            .finish()
    }
}

/// An API token as listed (never the secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Token {
    pub id: i32,
    pub user_id: i32,
    pub name: String,
    /// The secret's first characters, to recognise it.
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    #[schema(required)]
    pub last_used_at: Option<DateTime<Utc>>,
}

/// `POST /api/v1/tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// 1 to 100 printable characters (after trimming).
    pub name: String,
}

/// The answer to `POST /api/v1/tokens`: the only time the secret is shown.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub token: Token,
    pub secret: String,
}

impl fmt::Debug for CreatedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreatedToken")
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

/// The machine-readable code of an error body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    ValidationFailed,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    PayloadTooLarge,
    RateLimited,
    Unavailable,
    Internal,
}

/// `{"error": {"code", "message", "field"?}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    pub message: String,
    /// The request field at fault, e.g. `branch` or `scenarios[1]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub field: Option<String>,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, message: impl Into<String>, field: Option<String>) -> Self {
        Self {
            error: ErrorDetail {
                code,
                message: message.into(),
                field,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_queue_keeps_task_order_and_refuses_duplicates() {
        let body = r#"{"branch":"main","tasks":{"z":"a.xml","a":"b.xml","m":"c.xml"}}"#;
        let q: CreateQueue = serde_json::from_str(body).unwrap();
        let ids: Vec<_> = q
            .tasks
            .as_ref()
            .unwrap()
            .iter()
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(ids, ["z", "a", "m"]);
        let round = serde_json::to_string(&q).unwrap();
        assert_eq!(round, body);

        let dup = r#"{"branch":"main","tasks":{"a":"x.xml","a":"y.xml"}}"#;
        let err = serde_json::from_str::<CreateQueue>(dup).unwrap_err();
        assert!(err.to_string().contains("duplicate task id"), "{err}");

        let unknown = r#"{"branch":"main","scenarios":[],"bogus":1}"#;
        assert!(serde_json::from_str::<CreateQueue>(unknown).is_err());
    }

    #[test]
    fn error_body_shape() {
        let body = ErrorBody::new(ErrorCode::ValidationFailed, "bad", Some("branch".into()));
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            serde_json::json!({"error": {"code": "validation_failed", "message": "bad", "field": "branch"}})
        );
        let body = ErrorBody::new(ErrorCode::NotFound, "no", None);
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            serde_json::json!({"error": {"code": "not_found", "message": "no"}})
        );
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let login = Login {
            username: "ann".into(),
            password: "hunter22".into(),
        };
        assert!(!format!("{login:?}").contains("hunter22"));
        let update = UpdateUser {
            password: Some("hunter22".into()),
            ..Default::default()
        };
        assert!(!format!("{update:?}").contains("hunter22"));
    }
}
