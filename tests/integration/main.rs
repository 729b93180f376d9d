//! The root package's one integration test binary (link time on two cores
//! is why there is one): every suite that starts the real `testarena-app`
//! and `testarena-worker` through the test kit (`crates/testarena-testkit`).
//!
//! - `attempts`: retries of farm failures, the build cache, JUnit imports.
//! - `e2e`: the pipeline over HTTP with the lx106 firmware and real QEMU.
//! - `boards`: queues on simulated boards (tests/fixtures/board-sim, a
//!   stand-in for a USB board: a real pty bridged to real QEMU).
//! - `cli`: the real `testarena` binary against a farm.
//! - `faults`: killed daemons, two workers, a full disk, contention,
//!   hostile repositories, event storms, secrets.
//! - `history`: flaky, new failures, compare and reruns of what failed, with QEMU.
//! - `lab`: app and two workers on three "hosts" (network namespaces and
//!   veth pairs) sharing one PostgreSQL: partitions, fencing, a restart.
//! - `forge`: real pushes through a bare repository's post-receive hook,
//!   commit statuses and notifications to the forge stand-in.
//!
//! Build the daemons first: `cargo build --workspace --bins`; then
//! `cargo test -p testarena --test integration [-- e2e::|cli::|faults::]`.

// Helpers outside #[test] functions unwrap too: a failed setup should stop
// the test where it happens.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

#[path = "../attempts/mod.rs"]
mod attempts;
#[path = "../boards/mod.rs"]
mod boards;
#[path = "../cli/mod.rs"]
mod cli;
#[path = "../e2e/mod.rs"]
mod e2e;
#[path = "../faults/mod.rs"]
mod faults;
#[path = "../forge/mod.rs"]
mod forge;
#[path = "../history/mod.rs"]
mod history;
#[path = "../lab/mod.rs"]
mod lab;
