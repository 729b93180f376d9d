//! End to end: the real `testarena-app` and `testarena-worker` on a temp
//! home, the lx106 firmware fixture built by the real cross-compiler and
//! booted by the real `qemu-system-xtensa`, over real HTTP.

// Helpers outside #[test] functions unwrap too: a failed setup should stop
// the test where it happens.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod pipeline;
mod support;
