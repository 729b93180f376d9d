//! How a queue's attempt ends, as the runner decides it (DESIGN section
//! 4): a status and its reason, whether the farm failed rather than the
//! code (retried while attempts are left), and whether the run was fenced
//! (the farm ended it meanwhile: nothing more of it is written). Internal
//! errors and stops map to an end here.

use testarena_domain::git::GitError;
use testarena_domain::status::Status;
use testarena_domain::store;

use crate::Error;
use crate::supervise::Stop;

/// How a queue's attempt ends (early or not): a status, its reason, and
/// whether the farm failed rather than the code (DESIGN section 11,
/// "Attempts": such an `error` is retried while attempts are left).
#[derive(Debug)]
pub(crate) struct End {
    pub status: Status,
    pub reason: String,
    pub farm_failure: bool,
    /// The farm ended the run meanwhile: nothing more of it is written.
    pub fenced: bool,
}

impl End {
    pub(crate) fn new(status: Status, reason: impl Into<String>) -> Self {
        Self {
            status,
            reason: reason.into(),
            farm_failure: false,
            fenced: false,
        }
    }

    /// A run the farm ended meanwhile, for `why`.
    pub(crate) fn fenced(why: impl Into<String>) -> Self {
        Self {
            fenced: true,
            ..Self::new(Status::Error, why)
        }
    }

    /// An `error` of the farm's own: git, the disk, QEMU, a board.
    pub(crate) fn farm(reason: impl Into<String>) -> Self {
        Self {
            farm_failure: true,
            ..Self::new(Status::Error, reason)
        }
    }
}

impl From<Error> for End {
    fn from(e: Error) -> Self {
        let reason = error_reason(&e);
        match e {
            Error::Store(store::StoreError::Fenced(why)) => End::fenced(why),
            // A clone or fetch that failed, a full disk: the farm's.
            Error::Git(_) => End::farm(reason),
            // A board fault retries only when another board could run it.
            Error::Board { retry, .. } => End {
                farm_failure: retry,
                ..End::new(Status::Error, reason)
            },
            _ if reason.starts_with("disk full") => End::farm(reason),
            _ => End::new(Status::Error, reason),
        }
    }
}

impl From<GitError> for End {
    fn from(e: GitError) -> Self {
        Error::from(e).into()
    }
}

/// A queue's `status_reason` for an internal error. A full disk (a log
/// that cannot grow, a database that cannot) says so first: it is the
/// operator's to fix, not the code's.
fn error_reason(e: &Error) -> String {
    match e {
        Error::Io { path, source } if is_disk_full(source) => {
            format!("disk full: cannot write {}: {source}", path.display())
        }
        Error::Store(store::StoreError::Full(message)) => {
            format!("disk full: cannot write the database: {message}")
        }
        other => other.to_string(),
    }
}

/// Whether an I/O error means the filesystem (or the user's quota) is full.
fn is_disk_full(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

impl From<Stop> for End {
    fn from(stop: Stop) -> Self {
        match stop {
            Stop::Fenced(why) => End::fenced(why),
            Stop::Failed(reason) => End::new(Status::Error, reason),
            other => End::new(Status::Aborted, other.reason()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_named_in_the_reason() {
        let full = Error::io(
            "/h/queues/q/build.log",
            std::io::Error::from_raw_os_error(28),
        );
        assert_eq!(
            error_reason(&full),
            "disk full: cannot write /h/queues/q/build.log: No space left on device (os error 28)"
        );
        let db = Error::Store(store::StoreError::Full("database or disk is full".into()));
        assert_eq!(
            error_reason(&db),
            "disk full: cannot write the database: database or disk is full"
        );
        let other = Error::io("/h/x", std::io::Error::from_raw_os_error(13));
        assert_eq!(
            error_reason(&other),
            "/h/x: Permission denied (os error 13)"
        );
    }
}
