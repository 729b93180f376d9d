//! TestArena's test kit: one harness for everything that starts the real
//! binaries (the root package's integration tests and `testarena-bench`).
//!
//! What it owns, by module:
//! - [`farm`]: a whole TestArena on loopback ([`Farm`]): a temporary home,
//!   one config per daemon written from a [`Setup`] and a target profile,
//!   `testarena-app` and any number of `testarena-worker`s as real child
//!   processes, an admin user and token, HTTP helpers; dropping it kills
//!   everything it started, even when a test panics.
//! - [`backend`]: the database of a test, SQLite or (with
//!   `TESTARENA_TEST_BACKEND=postgres`) PostgreSQL.
//! - [`bins`]: where the binaries of a build are (`target/debug` or
//!   `target/release`), building them when asked.
//! - [`daemon`]: a child in its own process group with its output appended
//!   to a file, stopped by process group on drop; operator sub-commands
//!   (`testarena-app user add`, `migrate`) run to their end.
//! - [`profile`]: the target profiles (`tests/fixtures/lx106.toml`).
//! - [`repo`]: git repositories: the example firmware
//!   (`tests/fixtures/make-repo.sh`), a small one of `<run>` scenarios, and
//!   commits made on top of them.
//! - [`netns`]: network namespaces joined by veth pairs, the "hosts" of
//!   the lab test (root only).
//! - [`http`]: a keep-alive HTTP client of the API over loopback.
//! - [`wait`]: polling with a deadline that names what it waited for.
//! - [`port`]: free loopback ports, never the same one twice per process.
//! - [`postgres`]: a throwaway PostgreSQL server in a temporary directory
//!   ([`PgCluster`], one shared per test process), an empty database per
//!   call ([`PgDatabase`]), the server stopped by pid even if the test
//!   process is killed.
//! - [`procs`]: the processes of this machine as `/proc` shows them.
//! - [`forge_standin`]: a stand-in for a forge's commit-status API (no
//!   Gitea, GitHub or GitLab runs here), recording what it receives.
//!
//! Lifecycle calls come in two forms: `try_*` returns an [`Error`] (the
//! benchmark program reports it), the short form panics with it (a test
//! stops where its setup failed).

pub mod backend;
pub mod bins;
pub mod board_sim;
mod config;
pub mod daemon;
mod error;
pub mod farm;
pub mod forge_standin;
pub mod http;
pub mod netns;
pub mod port;
pub mod postgres;
pub mod procs;
pub mod profile;
pub mod repo;
pub mod wait;

pub use backend::TestDatabase;
pub use bins::{Bins, Profile};
pub use board_sim::BoardSim;
pub use daemon::Daemon;
pub use error::{Error, Result};
pub use farm::{Farm, RepoKind, Setup};
pub use forge_standin::ForgeStandin;
pub use http::{Auth, Client, Resp};
pub use port::free_port;
pub use postgres::{Cluster as PgCluster, Database as PgDatabase};
pub use repo::{Content, Repo};
pub use wait::{try_wait_for, wait_for};

use std::path::{Path, PathBuf};

/// The repository's root (for `tests/fixtures` and `static/`): the current
/// directory or one above it that holds the fixtures (scripts run from the
/// root), else the checkout this crate was built from.
pub fn workspace_root() -> PathBuf {
    let holds = |dir: &Path| dir.join("tests/fixtures/make-repo.sh").is_file();
    std::env::current_dir()
        .ok()
        .and_then(|cwd| cwd.ancestors().find(|d| holds(d)).map(Path::to_path_buf))
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
}
