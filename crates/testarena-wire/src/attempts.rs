//! An earlier attempt of a queue in the queue's JSON (DESIGN section 11,
//! "Attempts"): a farm failure retried leaves one of these behind.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::status::Status;

/// One earlier attempt of a queue; its logs are under `attempts/<attempt>/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Attempt {
    /// From 1.
    pub attempt: i32,
    /// The worker that ran it.
    #[schema(required)]
    pub worker: Option<String>,
    /// `qemu` or the board's id.
    pub ran_on: String,
    #[schema(required)]
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: DateTime<Utc>,
    /// How the attempt ended (`error` for the farm failures retried).
    pub status: Status,
    /// Why, in words (`worker lost`).
    #[schema(required)]
    pub reason: Option<String>,
}
