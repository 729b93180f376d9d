//! The status machine of DESIGN section 4.
//!
//! Every status change of a queue or a task is checked by [`transition`]
//! before the store writes it; nothing leaves a final state.

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

/// A move the status machine refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("illegal {kind} status change: {from} -> {to}")]
pub struct IllegalTransition {
    pub kind: Kind,
    pub from: Status,
    pub to: Status,
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

/// Checks one status change. The legal moves are:
///
/// - `waiting` → `running`, `aborted` (queues and tasks), `skipped` (tasks:
///   not reached because the queue ended first);
/// - `running` → `passed`, `failed`, `error`, `aborted`.
///
/// Everything else, including staying in the same status and any move out of
/// a final status, is refused.
pub fn transition(kind: Kind, from: Status, to: Status) -> Result<Status, IllegalTransition> {
    use Status::*;
    let legal = from.applies_to(kind)
        && to.applies_to(kind)
        && matches!(
            (from, to),
            (Waiting, Running | Aborted | Skipped) | (Running, Passed | Failed | Error | Aborted)
        );
    if legal {
        Ok(to)
    } else {
        Err(IllegalTransition { kind, from, to })
    }
}

#[cfg(test)]
mod tests {
    use super::Status::*;
    use super::*;

    /// The whole table: every (kind, from, to) pair, legal or not.
    #[test]
    fn every_transition() {
        let legal: &[(Kind, Status, Status)] = &[
            (Kind::Queue, Waiting, Running),
            (Kind::Queue, Waiting, Aborted),
            (Kind::Queue, Running, Passed),
            (Kind::Queue, Running, Failed),
            (Kind::Queue, Running, Error),
            (Kind::Queue, Running, Aborted),
            (Kind::Task, Waiting, Running),
            (Kind::Task, Waiting, Aborted),
            (Kind::Task, Waiting, Skipped),
            (Kind::Task, Running, Passed),
            (Kind::Task, Running, Failed),
            (Kind::Task, Running, Error),
            (Kind::Task, Running, Aborted),
        ];
        let mut checked = 0;
        for kind in [Kind::Queue, Kind::Task] {
            for from in Status::ALL {
                for to in Status::ALL {
                    let expected = legal.contains(&(kind, from, to));
                    let got = transition(kind, from, to);
                    assert_eq!(got.is_ok(), expected, "{kind} {from} -> {to}");
                    if let Err(e) = got {
                        assert_eq!(
                            e.to_string(),
                            format!("illegal {kind} status change: {from} -> {to}")
                        );
                    }
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 2 * 7 * 7);
    }

    #[test]
    fn nothing_leaves_a_final_status() {
        for kind in [Kind::Queue, Kind::Task] {
            for from in Status::ALL.into_iter().filter(|s| s.is_final()) {
                for to in Status::ALL {
                    assert!(transition(kind, from, to).is_err(), "{kind} {from} -> {to}");
                }
            }
        }
    }

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
