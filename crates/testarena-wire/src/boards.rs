//! The JSON types of the boards API (DESIGN section 10): real boards on a
//! worker's serial ports, their status, health and lease.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A board's status (DESIGN section 10, "Lifecycle").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BoardStatus {
    /// Free to take a queue.
    Idle,
    /// Running a queue (leased).
    Busy,
    /// Its worker is not alive, or its serial device is missing.
    Offline,
    /// An admin took it out of scheduling.
    Maintenance,
    /// Its last health check failed: out of scheduling.
    Bad,
}

impl BoardStatus {
    pub const ALL: [BoardStatus; 5] = [
        Self::Idle,
        Self::Busy,
        Self::Offline,
        Self::Maintenance,
        Self::Bad,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Busy => "busy",
            Self::Offline => "offline",
            Self::Maintenance => "maintenance",
            Self::Bad => "bad",
        }
    }
}

/// What the last health check said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BoardHealth {
    Unknown,
    Good,
    Bad,
}

impl BoardHealth {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Good => "good",
            Self::Bad => "bad",
        }
    }

    /// `unknown` for anything else (the table's CHECK keeps others out).
    pub fn parse(text: &str) -> Self {
        match text {
            "good" => Self::Good,
            "bad" => Self::Bad,
            _ => Self::Unknown,
        }
    }
}

/// A board in `GET /api/v1/boards`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Board {
    pub id: String,
    /// The worker whose config has it.
    pub worker: String,
    pub target: String,
    pub tags: Vec<String>,
    pub status: BoardStatus,
    pub health: BoardHealth,
    /// The queue it runs now.
    #[schema(required)]
    pub queue: Option<String>,
    /// The serial device path of its config.
    pub serial: String,
    pub baud: i32,
    #[schema(required)]
    pub last_health_at: Option<DateTime<Utc>>,
    #[schema(required)]
    pub last_health_queue: Option<String>,
    /// A health check waiting or running now.
    #[schema(required)]
    pub health_queue: Option<String>,
    /// Whether its config has a `health` check.
    pub has_health_check: bool,
    pub maintenance: bool,
    pub note: String,
    /// Successful flashes since it was first registered.
    pub flashes: i64,
    /// Board faults since it was first registered.
    pub faults: i64,
}

/// One of a board's recent queues in `GET /api/v1/boards/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BoardQueue {
    pub id: String,
    pub status: crate::status::Status,
    #[schema(required)]
    pub status_reason: Option<String>,
    pub owner: String,
    pub branch: String,
    pub created_at: DateTime<Utc>,
    #[schema(required)]
    pub finished_at: Option<DateTime<Utc>>,
}

/// `GET /api/v1/boards/{id}`: the board and its last 20 queues, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BoardDetail {
    #[serde(flatten)]
    pub board: Board,
    pub queues: Vec<BoardQueue>,
}

/// `PATCH /api/v1/boards/{id}` (admins).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateBoard {
    /// `true` takes it out of scheduling (a running queue finishes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<bool>,
    /// Up to 1000 characters; `""` clears it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}
