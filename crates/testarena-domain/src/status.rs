//! The status machine of DESIGN section 4.
//!
//! Every status change of a queue or a task is checked by [`transition`]
//! before the store writes it; nothing leaves a final state.

pub use testarena_wire::status::{Kind, Status, UnknownStatus};

/// A move the status machine refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("illegal {kind} status change: {from} -> {to}")]
pub struct IllegalTransition {
    pub kind: Kind,
    pub from: Status,
    pub to: Status,
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

/// Checks the one move out of `running` that is not toward a final status:
/// a queue's farm failure retried (`running` → `waiting`, DESIGN section 11,
/// "Attempts"). Only queues make it, only from `running`, and only through
/// this function: [`transition`] refuses it, so no other write can.
///
/// The tasks of a retried queue are not moved: the retry records them, as
/// they were, in the attempt it ends, and gives the next attempt new ones
/// (the same rows reset to `waiting`), so no task status ever leaves a
/// final status either.
pub fn retry(kind: Kind, from: Status) -> Result<Status, IllegalTransition> {
    let to = Status::Waiting;
    if kind == Kind::Queue && from == Status::Running {
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

    /// The retry's table: one legal move, queues only.
    #[test]
    fn every_retry() {
        for kind in [Kind::Queue, Kind::Task] {
            for from in Status::ALL {
                let expected = kind == Kind::Queue && from == Running;
                let got = retry(kind, from);
                assert_eq!(got.is_ok(), expected, "{kind} {from} retried");
                match got {
                    Ok(to) => assert_eq!(to, Waiting),
                    Err(e) => assert_eq!(
                        e.to_string(),
                        format!("illegal {kind} status change: {from} -> waiting")
                    ),
                }
            }
        }
        // The ordinary machine still refuses it.
        assert!(transition(Kind::Queue, Running, Waiting).is_err());
    }

    #[test]
    fn nothing_leaves_a_final_status() {
        for kind in [Kind::Queue, Kind::Task] {
            for from in Status::ALL.into_iter().filter(|s| s.is_final()) {
                for to in Status::ALL {
                    assert!(transition(kind, from, to).is_err(), "{kind} {from} -> {to}");
                }
                assert!(retry(kind, from).is_err(), "{kind} {from} retried");
            }
        }
    }
}
