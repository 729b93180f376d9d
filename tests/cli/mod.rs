//! The `testarena` command-line client, the real binary, against the real
//! `testarena-app` and `testarena-worker` on loopback with the lx106
//! firmware fixture (build the daemons first: `cargo build --workspace --bins`).

mod account;
mod history;
mod logs;
mod queues;
pub(crate) mod run;
mod support;
