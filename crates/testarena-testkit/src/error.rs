//! The kit's one error type. Its `Debug` is its message, so that a test's
//! `unwrap()` or `?` reads like the assertion it stands for.

use std::path::PathBuf;
use std::time::Duration;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(thiserror::Error)]
pub enum Error {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} failed ({status}){output}")]
    Command {
        what: String,
        status: std::process::ExitStatus,
        /// What it printed, when captured (empty or starting with a newline).
        output: String,
    },
    #[error("{} is missing: {hint}", path.display())]
    Missing { path: PathBuf, hint: String },
    #[error("timed out after {after:?} waiting for {what}{last}")]
    Timeout {
        what: String,
        after: Duration,
        /// The last error seen while waiting (empty or starting with ": ").
        last: String,
    },
    #[error("{method} {path}: {message}")]
    Http {
        method: String,
        path: String,
        message: String,
    },
    #[error("{0}")]
    Other(String),
}

impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// `io::Error` with what was being done.
pub(crate) trait IoContext<T> {
    fn what(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn what(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io {
            what: what(),
            source,
        })
    }
}

/// Panics with the error's message: the short, test-facing form of a call.
pub(crate) fn or_panic<T>(r: Result<T>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}
