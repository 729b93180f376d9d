//! The worker with real processes: queues run end to end through the
//! library (a real git repository, a migrated SQLite file, real children,
//! a shell script standing in for QEMU), the slot's checkout moved from
//! commit to commit, then the real binary killed and restarted. Real
//! firmware on real QEMU is `tests/e2e`'s (through the app, as users see
//! it); these tests cover the worker's own edge cases.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers, like the tests, panic on a failed setup"
)]

mod support;

use std::time::{Duration, Instant};

use testarena_domain::status::Status;
use testarena_domain::store::{self, AbortOutcome};
use testarena_worker::process::{group_members, queue_processes};
use tokio::sync::watch;

use support::*;

const LONG: Duration = Duration::from_secs(60);
/// Who aborts in these tests: an admin may stop any queue.
const ADMIN: store::Actor<'static> = store::Actor {
    name: "admin",
    admin: true,
};

fn case_names(
    detail: &testarena_domain::models::QueueDetail,
) -> Vec<(String, String, Option<String>)> {
    detail
        .tasks
        .iter()
        .flat_map(|(_, cases)| cases)
        .map(|c| (c.name.clone(), c.status.clone(), c.message.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passing_queue_end_to_end() {
    let farm = Farm::new(
        "pass",
        target(&["sh", "-c", "echo building; mkdir -p build"]),
    );
    let id = farm.submit("main", &["scenarios/pass.xml", "scenarios/boot.xml"], None);
    let (status, reason) = farm.run_next().await;
    assert_eq!((status, reason.as_str()), (Status::Passed, ""));

    let detail = farm.detail(&id);
    let q = &detail.queue;
    assert_eq!(q.status, "passed");
    assert_eq!(q.status_reason, None);
    assert_eq!(q.commit_sha.as_ref().map(String::len), Some(40));
    assert!(q.finished_at.is_some());
    assert_eq!(q.pgid, None);
    let (t1, t2) = (&detail.tasks[0].0, &detail.tasks[1].0);
    assert_eq!((t1.status.as_str(), t1.passed, t1.failed), ("passed", 2, 0));
    // The boot test and its two Unity cases, one of them ignored.
    assert_eq!(
        (t2.status.as_str(), t2.passed, t2.skipped),
        ("passed", 2, 1)
    );
    assert_eq!(
        case_names(&detail),
        vec![
            ("hello".into(), "passed".into(), None),
            ("env".into(), "passed".into(), None),
            ("unit/t_one".into(), "passed".into(), None),
            ("unit/t_two".into(), "skipped".into(), Some("later".into())),
            ("unit".into(), "passed".into(), None),
        ]
    );

    let dir = farm.queue_dir(&id);
    assert!(farm.read(dir.join("build.log")).contains("building\n"));
    let hello = farm.read(dir.join(format!("tasks/{id}.1/hello.log")));
    assert_eq!(hello, format!("hello from {id}.1\n"));
    // No HTML rendering of the logs any more (DESIGN section 3).
    assert!(!dir.join(format!("tasks/{id}.1/hello.html")).exists());
    // The fake QEMU's console, with the line the matcher sent.
    let console = farm.read(dir.join(format!("tasks/{id}.2/unit.log")));
    assert!(console.contains("got *\n"), "{console}");
    let timeline = farm.read(dir.join("queue.log"));
    for what in [
        "claimed by worker w-pass",
        "fetched fw",
        "commit ",
        "checked out",
        "build started",
        "build passed in",
        &format!("test {id}.1/hello passed in"),
        &format!("task {id}.2 passed"),
        "finished passed",
    ] {
        assert!(timeline.contains(what), "{what:?} not in {timeline}");
    }
    let junit = farm.read(dir.join("junit.xml"));
    assert!(
        junit.contains("<testcase") && junit.contains("unit/t_two"),
        "{junit}"
    );
    // The slot keeps its checkout; the build directory goes with the queue.
    assert!(farm.workspace().join("README").is_file());
    assert!(
        !farm.workspace().join("build").exists(),
        "build directory left behind"
    );
    assert!(queue_processes(&id).is_empty(), "the fake QEMU survived");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_queue_says_which_and_why() {
    let farm = Farm::new("fail", target(&["true"]));
    let id = farm.submit("main", &["scenarios/pass.xml", "scenarios/fail.xml"], None);
    let (status, reason) = farm.run_next().await;
    assert_eq!(
        (status, reason.as_str()),
        (Status::Failed, "1 of 2 tasks failed")
    );
    let detail = farm.detail(&id);
    let (queue, reason, tasks) = statuses(&detail);
    assert_eq!(
        (queue.as_str(), reason.as_deref()),
        ("failed", Some("1 of 2 tasks failed"))
    );
    assert_eq!(
        tasks,
        vec![
            ("passed".into(), None),
            ("failed".into(), Some("exit code 3".into()))
        ]
    );
    let fail = &detail.tasks[1];
    assert_eq!((fail.0.passed, fail.0.failed), (1, 1));
    assert_eq!(fail.1[1].message.as_deref(), Some("exit code 3"));
    let dir = farm.queue_dir(&id);
    assert_eq!(
        farm.read(dir.join(format!("tasks/{id}.2/bad.log"))),
        "failing\n"
    );
    assert!(farm.read(dir.join("junit.xml")).contains("<failure"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abort_stops_every_process_within_the_grace_period() {
    let farm = Farm::new("abort", target(&["true"]));
    let id = farm.submit(
        "main",
        &["scenarios/stubborn.xml", "scenarios/pass.xml"],
        None,
    );
    let (_tx, rx) = watch::channel(false);
    let run = farm.start_next(rx);
    // `sh` and its two sleepers, all ignoring SIGTERM.
    wait_for("the test's processes", LONG, || {
        (queue_processes(&id).len() >= 3).then_some(())
    })
    .await;
    // The group is recorded as the step starts: until then the queue holds
    // the build's, which is gone.
    let pgid = wait_for("the test's process group recorded", LONG, || {
        let pgid = farm.queue(&id).pgid?;
        (!group_members(pgid).is_empty()).then_some(pgid)
    })
    .await;
    let mut conn = farm.pool.get().unwrap();
    let outcome = store::request_abort(&mut conn, &id, "stopped by tester", ADMIN).unwrap();
    assert!(matches!(outcome, AbortOutcome::Requested(_)));
    let asked = Instant::now();
    let (status, reason) = tokio::time::timeout(LONG, run).await.unwrap().unwrap();
    let took = asked.elapsed();
    assert!(
        took < Duration::from_secs(GRACE_S + 1),
        "took {took:?} to stop"
    );
    assert_eq!(
        (status, reason.as_str()),
        (Status::Aborted, "stopped by tester")
    );
    assert!(
        queue_processes(&id).is_empty(),
        "{:?}",
        queue_processes(&id)
    );
    assert!(group_members(pgid).is_empty());
    let (queue, reason, tasks) = statuses(&farm.detail(&id));
    assert_eq!(
        (queue.as_str(), reason.as_deref()),
        ("aborted", Some("stopped by tester"))
    );
    assert_eq!(
        tasks,
        vec![
            ("aborted".into(), Some("stopped by tester".into())),
            ("skipped".into(), Some("not reached".into()))
        ]
    );
    assert!(farm.queue_dir(&id).join("junit.xml").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_past_its_timeout_fails_and_the_next_runs() {
    let farm = Farm::new("timeout", target(&["true"]));
    let id = farm.submit("main", &["scenarios/timeout.xml"], None);
    let started = Instant::now();
    let (status, reason) = farm.run_next().await;
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(
        (status, reason.as_str()),
        (Status::Failed, "1 of 1 tasks failed")
    );
    let detail = farm.detail(&id);
    assert_eq!(
        case_names(&detail),
        vec![
            (
                "slow".into(),
                "failed".into(),
                Some("timeout after 1 s".into())
            ),
            ("after".into(), "passed".into(), None),
        ]
    );
    assert_eq!(
        detail.tasks[0].0.status_reason.as_deref(),
        Some("timeout after 1 s")
    );
    assert!(queue_processes(&id).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_test_hits_its_quiet_timeout() {
    let farm = Farm::new("quiet", target(&["true"]));
    let id = farm.submit("main", &["scenarios/quiet.xml"], None);
    let (status, _) = farm.run_next().await;
    assert_eq!(status, Status::Failed);
    let detail = farm.detail(&id);
    assert_eq!(
        case_names(&detail),
        vec![(
            "hang".into(),
            "failed".into(),
            Some("no output for 1 s".into())
        )]
    );
    let log = farm.read(farm.queue_dir(&id).join(format!("tasks/{id}.1/hang.log")));
    assert_eq!(log, "started\n");
    assert!(queue_processes(&id).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_timeout_aborts_the_queue() {
    let farm = Farm::new("qtimeout", target(&["true"]));
    let id = farm.submit("main", &["scenarios/sleep.xml"], Some(2));
    let started = Instant::now();
    let (status, reason) = farm.run_next().await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(2 + GRACE_S + 5),
        "{took:?}"
    );
    assert_eq!((status, reason.as_str()), (Status::Aborted, "timeout"));
    let (_, _, tasks) = statuses(&farm.detail(&id));
    assert_eq!(tasks, vec![("aborted".into(), Some("timeout".into()))]);
    assert!(queue_processes(&id).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_build_fails_the_queue_and_skips_its_tasks() {
    let farm = Farm::new(
        "build",
        target(&["sh", "-c", "echo compiling; echo oops >&2; exit 2"]),
    );
    let id = farm.submit("main", &["scenarios/pass.xml", "scenarios/fail.xml"], None);
    let (status, reason) = farm.run_next().await;
    assert_eq!(
        (status, reason.as_str()),
        (Status::Failed, "build failed (exit 2)")
    );
    let (_, _, tasks) = statuses(&farm.detail(&id));
    assert_eq!(
        tasks,
        vec![("skipped".into(), Some("not reached".into())); 2]
    );
    let log = farm.read(farm.queue_dir(&id).join("build.log"));
    assert!(
        log.contains("compiling\n") && log.contains("oops\n"),
        "{log}"
    );
    assert!(
        farm.read(farm.queue_dir(&id).join("queue.log"))
            .contains("build failed in")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_scenarios_are_task_errors_with_file_and_line() {
    let farm = Farm::new("badxml", target(&["true"]));
    let id = farm.submit(
        "main",
        &[
            "scenarios/bad.xml",
            "scenarios/link.xml",
            "scenarios/missing.xml",
            "scenarios/pass.xml",
        ],
        None,
    );
    let (status, reason) = farm.run_next().await;
    assert_eq!(
        (status, reason.as_str()),
        (Status::Error, "3 of 4 tasks had errors")
    );
    let (_, _, tasks) = statuses(&farm.detail(&id));
    let reasons: Vec<String> = tasks
        .iter()
        .map(|(_, r)| r.clone().unwrap_or_default())
        .collect();
    assert!(
        reasons[0].starts_with("scenarios/bad.xml:3: "),
        "{reasons:?}"
    );
    assert!(reasons[0].contains("bogus"), "{reasons:?}");
    assert_eq!(reasons[1], "scenarios/link.xml: leads out of the checkout");
    assert_eq!(
        reasons[2],
        "scenarios/missing.xml: not found in the checkout"
    );
    assert_eq!(tasks[3], ("passed".into(), None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_branch_is_an_error_with_gits_message() {
    let farm = Farm::new("branch", target(&["true"]));
    let id = farm.submit("nope", &["scenarios/pass.xml"], None);
    let (status, reason) = farm.run_next().await;
    assert_eq!(
        (status, reason.as_str()),
        (Status::Error, "branch \"nope\" not found")
    );
    let (_, _, tasks) = statuses(&farm.detail(&id));
    assert_eq!(tasks, vec![("skipped".into(), Some("not reached".into()))]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_env_script_is_sourced_once_and_used_by_every_step() {
    let mut t = target(&[
        "sh",
        "-c",
        "test \"$FROM_SCRIPT\" = yes && echo built with $FROM_SCRIPT",
    ]);
    let farm = Farm::create("envscript", t.clone(), |repo| {
        make_repo(
            repo,
            &[
                ("env.sh", "echo sourcing; export FROM_SCRIPT=yes\n"),
                (
                    "scenarios/env.xml",
                    r#"<scenario name="env"><test name="t"><run>test "$FROM_SCRIPT" = yes</run></test></scenario>"#,
                ),
            ],
        );
    });
    t.env_script = Some(farm.dir.path().join("repo/env.sh"));
    let mut farm = farm;
    farm.config.targets.insert("test".into(), t);
    let id = farm.submit("main", &["scenarios/env.xml"], None);
    let (status, reason) = farm.run_next().await;
    assert_eq!((status, reason.as_str()), (Status::Passed, ""));
    let log = farm.read(farm.queue_dir(&id).join("build.log"));
    assert!(
        log.contains("sourcing\n") && log.contains("built with yes\n"),
        "{log}"
    );
    // The captured environment is not left lying around.
    assert!(!farm.workspace().with_extension("env").exists());
    assert!(farm.workspace().join("env.sh").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_test_leaves_running_is_killed_when_it_ends() {
    let farm = Farm::new("background", target(&["true"]));
    let id = farm.submit("main", &["scenarios/background.xml"], None);
    let started = Instant::now();
    let (status, reason) = farm.run_next().await;
    assert_eq!((status, reason.as_str()), (Status::Passed, ""));
    // Neither the sleeper in the test's group nor the one that left it.
    assert!(
        queue_processes(&id).is_empty(),
        "{:?}",
        queue_processes(&id)
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    let log = farm.read(farm.queue_dir(&id).join(format!("tasks/{id}.1/leave.log")));
    assert_eq!(log, "left\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_qemu_is_a_farm_error() {
    let mut t = target(&["true"]);
    t.qemu = strings(&["/nonexistent/qemu-system-xtensa", "-M", "sim"]);
    let farm = Farm::new("noqemu", t);
    let id = farm.submit("main", &["scenarios/boot.xml"], None);
    let (status, reason) = farm.run_next().await;
    assert_eq!(
        (status, reason.as_str()),
        (Status::Error, "1 of 1 tasks had errors")
    );
    let detail = farm.detail(&id);
    let unit = &detail.tasks[0].1[0];
    assert_eq!(unit.status, "error");
    assert!(
        unit.message
            .as_deref()
            .is_some_and(|m| m.starts_with("cannot start /nonexistent/qemu-system-xtensa: ")),
        "{unit:?}"
    );
}

#[path = "worker/binary.rs"]
mod binary;
#[path = "worker/checkout.rs"]
mod checkout;
#[path = "worker/postgres.rs"]
mod postgres;
#[path = "worker/retries.rs"]
mod retries;
