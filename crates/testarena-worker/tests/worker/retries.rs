//! Which ends of a queue the worker retries (DESIGN section 11,
//! "Attempts"): a fetch that fails and a QEMU that cannot start are the
//! farm's, retried while `retry_errors` allows; a build failure, a test
//! failure and a scenario missing from the checkout never are.

use testarena_domain::status::Status;

use super::support::{Farm, make_repo, strings, target};

fn retrying(name: &str, build: &[&str]) -> Farm {
    let mut farm = Farm::new(name, target(build));
    farm.config.worker.retry_errors = 1;
    farm
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_fetch_is_retried_then_ends() {
    let farm = retrying("retry-fetch", &["true"]);
    let id = farm.submit("main", &["scenarios/pass.xml"], None);
    // The remote is gone: the mirror cannot be cloned.
    std::fs::remove_dir_all(farm.dir.path().join("repo")).unwrap();
    let (status, reason) = farm.run_next().await;
    assert_eq!(status, Status::Error, "{reason}");
    let q = farm.queue(&id);
    assert_eq!((q.status(), q.attempt), (Status::Waiting, 2), "{q:?}");
    let waiting = q.status_reason.unwrap_or_default();
    assert!(waiting.starts_with("retrying after: "), "{waiting}");
    assert!(waiting.ends_with(" (attempt 2 of 2)"), "{waiting}");
    let timeline = farm.read(farm.queue_dir(&id).join("queue.log"));
    assert!(timeline.contains("attempt 1 ended error: "), "{timeline}");
    assert!(
        !farm.queue_dir(&id).join("junit.xml").exists(),
        "not ended yet"
    );

    // The second attempt fails the same way and, out of attempts, ends.
    farm.run_next().await;
    let d = farm.detail(&id);
    assert_eq!((d.queue.status(), d.queue.attempt), (Status::Error, 2));
    assert_eq!(d.attempts.len(), 1);
    assert_eq!(d.attempts[0].worker.as_deref(), Some("w-retry-fetch"));
    assert!(farm.queue_dir(&id).join("junit.xml").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_qemu_that_cannot_start_is_retried() {
    let mut farm = Farm::create("retry-qemu", target(&["true"]), |repo| {
        make_repo(
            repo,
            &[(
                "scenarios/boot.xml",
                "<scenario name=\"boot\"><test name=\"boot\"><boot/><expect>x</expect></test></scenario>",
            )],
        )
    });
    farm.config.worker.retry_errors = 1;
    if let Some(t) = farm.config.targets.get_mut("test") {
        t.qemu = strings(&["/nonexistent/qemu-system-xtensa"]);
    }
    let id = farm.submit("main", &["scenarios/boot.xml"], None);
    farm.run_next().await;
    let q = farm.queue(&id);
    assert_eq!((q.status(), q.attempt), (Status::Waiting, 2), "{q:?}");
    assert_eq!(
        q.status_reason.as_deref(),
        Some("retrying after: 1 of 1 tasks had errors (attempt 2 of 2)")
    );
    // The attempt's logs move when the next one is claimed.
    farm.run_next().await;
    let d = farm.detail(&id);
    assert_eq!(d.queue.status(), Status::Error);
    let moved = farm.queue_dir(&id).join("attempts/1/tasks");
    assert!(moved.is_dir(), "{}", moved.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_and_test_failures_and_missing_scenarios_are_never_retried() {
    for (name, build, scenario, status) in [
        ("never-build", "false", "scenarios/pass.xml", Status::Failed),
        ("never-test", "true", "scenarios/fail.xml", Status::Failed),
        (
            "never-scenario",
            "true",
            "scenarios/nope.xml",
            Status::Error,
        ),
    ] {
        let farm = retrying(name, &[build]);
        let id = farm.submit("main", &[scenario], None);
        let (got, reason) = farm.run_next().await;
        assert_eq!(got, status, "{name}: {reason}");
        let d = farm.detail(&id);
        assert_eq!((d.queue.status(), d.queue.attempt), (status, 1), "{name}");
        assert!(d.attempts.is_empty(), "{name}");
    }
}
