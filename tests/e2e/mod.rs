//! End to end: the real `testarena-app` and `testarena-worker` on a temp
//! home (the test kit's [`Farm`]), the lx106 firmware fixture built by the
//! real cross-compiler and booted by the real `qemu-system-xtensa`, over
//! real HTTP.

mod pinned;
mod pipeline;

use testarena_testkit::Setup;

/// The farm of these tests: the lx106 profile, two slots, a worker lost
/// after 3 s of silence, tests that time out after 60 s.
pub fn setup() -> Setup {
    Setup {
        workers: vec!["e2e-worker".into()],
        slots: 2,
        poll_interval_ms: 50,
        test_timeout_s: 60,
        abort_grace_s: 2,
        heartbeat_s: 1,
        lost_after_s: 3,
        ..Setup::lx106()
    }
}
