//! Fault injection and security, with the real `testarena-app` and
//! `testarena-worker` binaries: killed daemons, two workers on one
//! database, a full disk, write contention, hostile repositories, hundreds
//! of event streams, and a look for secrets in everything the farm wrote
//! or answered. Each test asks the test kit for its own farm (with every
//! answer kept for the secrets check), waits for events with deadlines,
//! and the farm kills everything it started when dropped.
//!
//! Build the daemons first: `cargo build --workspace --bins`.

mod app;
mod contention;
mod disk;
mod events;
mod hostile;
mod probe;
mod secrets;
mod workers;

use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use testarena_testkit::Setup;
pub use testarena_testkit::farm::PASSWORD;

/// The admin every farm makes.
pub const ADMIN: &str = "admin";

/// Tests that measure latency take this lock exclusively; the others share
/// it, so no queue storm runs while a p99 is measured.
static QUIET: RwLock<()> = RwLock::new(());

pub fn shared() -> RwLockReadGuard<'static, ()> {
    QUIET
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub fn exclusive() -> RwLockWriteGuard<'static, ()> {
    QUIET
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The small repository of `<run>` scenarios, every answer kept.
pub fn small() -> Setup {
    Setup {
        keep_answers: true,
        ..Setup::small()
    }
}

/// The lx106 firmware fixture, every answer kept.
pub fn fixture() -> Setup {
    Setup {
        keep_answers: true,
        ..Setup::lx106()
    }
}
