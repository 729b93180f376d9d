//! Fault injection and security, with the real `testarena-app` and
//! `testarena-worker` binaries: killed daemons, two workers on one
//! database, a full disk, write contention, hostile repositories, hundreds
//! of event streams, and a look for secrets in everything the farm wrote
//! or answered. Each test builds its own farm (see `farm`), waits for
//! events with deadlines and kills everything it started.
//!
//! Build the daemons first: `cargo build --workspace --bins`.

// Helpers outside #[test] functions unwrap too: a failed setup should stop
// the test where it happens.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod app;
mod contention;
mod disk;
mod events;
mod farm;
mod hostile;
mod probe;
mod repo;
mod secrets;
mod workers;
