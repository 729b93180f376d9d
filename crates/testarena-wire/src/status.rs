//! The statuses of DESIGN section 4. The moves between them are checked by
//! `testarena_domain::status::transition`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The status of a queue, a task or a test case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Waiting,
    Running,
    Passed,
    Failed,
    Error,
    Aborted,
    /// Tasks only: not reached.
    Skipped,
}

/// What a status belongs to: tasks have one status more than queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Queue,
    Task,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Queue => "queue",
            Kind::Task => "task",
        })
    }
}

/// An unknown status name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown status {0:?}")]
pub struct UnknownStatus(pub String);

impl Status {
    pub const ALL: [Status; 7] = [
        Status::Waiting,
        Status::Running,
        Status::Passed,
        Status::Failed,
        Status::Error,
        Status::Aborted,
        Status::Skipped,
    ];

    /// The lowercase name used in the database and in JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Waiting => "waiting",
            Status::Running => "running",
            Status::Passed => "passed",
            Status::Failed => "failed",
            Status::Error => "error",
            Status::Aborted => "aborted",
            Status::Skipped => "skipped",
        }
    }

    /// A final status never changes again.
    pub const fn is_final(self) -> bool {
        !matches!(self, Status::Waiting | Status::Running)
    }

    /// Whether `kind` can be in this status at all.
    pub const fn applies_to(self, kind: Kind) -> bool {
        !matches!((self, kind), (Status::Skipped, Kind::Queue))
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for status in Status::ALL {
            assert_eq!(status.as_str().parse::<Status>(), Ok(status));
            assert_eq!(
                serde_json::to_string(&status).ok(),
                Some(format!("\"{status}\""))
            );
        }
        assert_eq!(
            "Running".parse::<Status>(),
            Err(UnknownStatus("Running".into()))
        );
    }
}
