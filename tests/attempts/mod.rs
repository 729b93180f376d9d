//! Issue 16's worker side, end to end (real app, worker, make, QEMU and
//! the lx106 fixture firmware): attempts (a lost worker's queue retried,
//! never a test failure), the build cache, and `<run junit>` imports.

mod cache;
mod junit;
mod retry;

use std::time::Duration;

use serde_json::Value;
use testarena_testkit::{Farm, Setup};

/// How long one queue of these tests may take.
pub const DEADLINE: Duration = Duration::from_secs(120);

/// The lx106 farm of these tests, with `targets` added to the profile.
pub fn setup(targets: &str) -> Setup {
    Setup {
        workers: vec!["att-worker".into()],
        slots: 1,
        poll_interval_ms: 50,
        test_timeout_s: 60,
        abort_grace_s: 2,
        heartbeat_s: 1,
        lost_after_s: 3,
        targets: targets.into(),
        ..Setup::lx106()
    }
}

/// The paths the logs API lists for a queue.
pub fn log_paths(farm: &Farm, id: &str) -> Vec<String> {
    let listed = farm.get(&format!("/api/v1/queues/{id}/logs"));
    let items = listed
        .as_array()
        .or_else(|| listed["items"].as_array())
        .cloned()
        .unwrap_or_default();
    items
        .iter()
        .filter_map(|f| f["path"].as_str().map(str::to_owned))
        .collect()
}

/// A log file of a queue through the API; panics unless 200.
pub fn log(farm: &Farm, id: &str, path: &str) -> String {
    let (status, body) = farm.get_raw(&format!("/api/v1/queues/{id}/logs/{path}"));
    assert_eq!(status, 200, "{path}: {body}");
    body
}

/// One test case of a queue by name.
pub fn case<'a>(q: &'a Value, name: &str) -> &'a Value {
    q["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["tests"].as_array().unwrap())
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no test {name} in {q:#}"))
}
