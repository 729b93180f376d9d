//! The JSON of the forge routes (DESIGN section 12): what a hook answers,
//! the hooks a repository received, and the deliveries (commit statuses and
//! notifications) sent for a queue.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What a received hook came to: the answer of `POST /api/v1/hooks/{repo}`,
/// the same for a redelivery of the same delivery id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HookReceipt {
    /// The forge's delivery id (`X-Gitea-Delivery`, `X-GitHub-Delivery`,
    /// `X-Gitlab-Event-UUID`), or `sha256:<hex of the body>` without one.
    pub delivery: String,
    /// The event as the forge names it (`push`, `ping`, `Push Hook`, ...).
    pub event: String,
    /// `started` (queues were made), `ignored` (nothing to do: a ping, a tag,
    /// a deleted branch, no matching entry) or `error` (a bad `.testarena.toml`
    /// or scenario; nothing was started).
    pub outcome: String,
    /// Why, in words, when nothing was started.
    #[schema(required)]
    pub reason: Option<String>,
    /// The ids of the queues this delivery made (the first delivery's, for a
    /// redelivery).
    pub queues: Vec<String>,
    /// Whether this delivery id had been received before.
    pub redelivery: bool,
}

/// A hook a repository received, with the deliveries it made itself (the
/// `error` status of a bad `.testarena.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HookRecord {
    pub delivery: String,
    pub forge: String,
    pub event: String,
    #[schema(required)]
    pub branch: Option<String>,
    #[schema(required)]
    pub commit: Option<String>,
    /// The forge user who pushed.
    #[schema(required)]
    pub pusher: Option<String>,
    pub outcome: String,
    #[schema(required)]
    pub reason: Option<String>,
    pub queues: Vec<String>,
    pub received_at: DateTime<Utc>,
    pub deliveries: Vec<Delivery>,
}

/// One commit status or notification, with its tries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Delivery {
    pub id: i32,
    /// `status` (a commit status on the forge) or `notify` (a `[[notify]]` webhook).
    pub kind: String,
    /// A status's state (`pending`, `success`, `failure`, `error`) or a
    /// notification's event (`queue.started`, `queue.finished`, `board.bad`).
    pub event: String,
    /// A status's context: `testarena` or `testarena/<scenario>`.
    #[schema(required)]
    pub context: Option<String>,
    /// Where it is POSTed.
    pub target_url: String,
    /// The JSON body, as sent.
    pub payload: String,
    /// `pending` (to send, or to try again at `next_try_at`), `delivered`,
    /// `failed` (a final answer, or 24 h of tries) or `superseded` (a newer
    /// status of the same context came first).
    pub state: String,
    /// Tries made so far.
    pub attempts: i32,
    /// The HTTP status of the last answer.
    #[schema(required)]
    pub last_code: Option<i32>,
    /// The first 2 KiB of the last answer's body.
    #[schema(required)]
    pub last_answer: Option<String>,
    /// Why the last try got no answer (a connection error, a timeout), or
    /// why it was not sent.
    #[schema(required)]
    pub last_error: Option<String>,
    /// When it is tried next, while `pending`.
    #[schema(required)]
    pub next_try_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}
