//! `testarena-app` over real HTTP on loopback: one integration binary.

// Test helpers outside #[test] functions unwrap too: a failure should stop
// the test where it happens.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod auth;
mod boards;
mod contract;
mod history;
mod hooks;
mod malformed;
mod openapi;
mod pglogs;
mod queues;
mod support;
