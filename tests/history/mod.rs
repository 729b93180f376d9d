//! History end to end (DESIGN section 11): the real app and worker, the
//! lx106 firmware fixture in real QEMU, and the fixture's `history.xml`,
//! whose `coin` test passes or fails by a file the test puts in the farm's
//! home — so one commit passes and fails with real processes.

mod flaky;

use testarena_testkit::Setup;

/// Two slots, so reruns of `count` run side by side.
pub fn setup() -> Setup {
    Setup {
        workers: vec!["history-worker".into()],
        slots: 2,
        poll_interval_ms: 50,
        test_timeout_s: 60,
        ..Setup::lx106()
    }
}
