//! Workers: two processes on one database never run a queue twice; a
//! worker killed in the middle of a build loses its queue, and its restart
//! kills every process the build left.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::json;

use super::probe::{check_secrets, queue_processes, wait_for};
use super::{shared, small};
use testarena_testkit::{Farm, Setup};

const QUEUES: usize = 300;

/// How many queues are in `status`, up to 200.
fn count(farm: &Farm, status: &str) -> usize {
    let r = farm.call(
        "GET",
        &format!("/api/v1/queues?status={status}&limit=200"),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["items"].as_array().map_or(0, Vec::len)
}

#[test]
fn two_workers_run_each_of_300_queues_exactly_once() {
    let _quiet = shared();
    let farm = Farm::start(Setup {
        workers: vec!["w1".into(), "w2".into()],
        slots: 2,
        poll_interval_ms: 20,
        ..small()
    });
    let started = Instant::now();
    // Four submitters, while both workers claim.
    let ids: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    (0..QUEUES / 4)
                        .map(|_| farm.submit("main", &["scenarios/quick.xml"]))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let submitted = started.elapsed();
    assert_eq!(ids.len(), QUEUES);
    wait_for(Duration::from_secs(240), "every queue to end", || {
        (count(&farm, "waiting") == 0 && count(&farm, "running") == 0).then_some(())
    });
    let all_done = started.elapsed();

    let mut by_worker = std::collections::BTreeMap::<String, usize>::new();
    for id in &ids {
        let q = farm.queue(id);
        assert_eq!(q["status"], "passed", "{q:#}");
        let tasks = q["tasks"].as_array().unwrap();
        assert_eq!(tasks.len(), 1, "{q:#}");
        let tests = tasks[0]["tests"].as_array().unwrap();
        assert_eq!(tests.len(), 1, "one set of results: {q:#}");
        assert_eq!(tests[0]["name"], "true");
        assert_eq!(tasks[0]["passed"], 1, "{q:#}");
        let log = farm.queue_log(id);
        let claims = log.matches("claimed by worker").count();
        assert_eq!(claims, 1, "queue {id} was claimed {claims} times:\n{log}");
        assert_eq!(log.matches("finished passed").count(), 1, "{log}");
        let worker = q["worker"].as_str().unwrap_or("none").to_owned();
        assert!(
            log.contains(&format!("claimed by worker {worker} ")),
            "{log}"
        );
        *by_worker.entry(worker).or_default() += 1;
    }
    assert!(
        by_worker.keys().all(|w| w == "w1" || w == "w2"),
        "{by_worker:?}"
    );
    println!(
        "two workers: {QUEUES} queues submitted in {:.1} s, all passed after {:.1} s, each claimed once; by worker {by_worker:?}",
        submitted.as_secs_f64(),
        all_done.as_secs_f64()
    );
    check_secrets(&farm);
    farm.assert_no_leftovers();
}

/// A build that starts grandchildren, one of them in its own session.
const SLEEPY: &str = r#"
[targets.sleepy]
build = ["sh", "-c", "sleep 600 & setsid sleep 600 & echo building; sleep 600; wait"]
qemu = ["false"]
"#;

#[test]
fn a_worker_killed_during_the_build_loses_its_queue_and_leaves_nothing() {
    let _quiet = shared();
    let mut farm = Farm::start(Setup {
        targets: SLEEPY.into(),
        default_target: "sleepy".into(),
        slots: 1,
        ..small()
    });
    let id = farm.submit("main", &["scenarios/quick.xml"]);
    // sh, its two background sleeps and the one it waits for.
    let before = wait_for(Duration::from_secs(30), "the build's processes", || {
        let pids = queue_processes(&id);
        (pids.len() >= 4).then_some(pids)
    });
    assert!(farm.queue_log(&id).contains("build started"));
    farm.stop_worker(0, Signal::SIGKILL);
    let orphans = queue_processes(&id);
    assert!(
        !orphans.is_empty(),
        "the grandchildren outlive the worker until it restarts: {before:?}"
    );

    farm.start_worker(0);
    let q = farm.wait_final(&id, Duration::from_secs(30));
    assert_eq!(q["status"], "error", "{q:#}");
    assert_eq!(q["status_reason"], "worker lost", "{q:#}");
    assert_eq!(q["tasks"][0]["status"], "skipped", "{q:#}");
    wait_for(
        Duration::from_secs(15),
        "the build's processes to die",
        || queue_processes(&id).is_empty().then_some(()),
    );
    let log = farm.queue_log(&id);
    assert!(log.contains("finished error: worker lost"), "{log}");
    farm.assert_no_leftovers();
    println!(
        "worker SIGKILL during the build: {} processes, {} outlived the worker, all killed by its restart; queue error \"worker lost\"",
        before.len(),
        orphans.len()
    );

    // The restarted worker runs queues again.
    let next = farm.submit_with("main", &["scenarios/quick.xml"], json!({"target": "noop"}));
    let q = farm.wait_final(&next, Duration::from_secs(60));
    assert_eq!(q["status"], "passed", "{q:#}");
    check_secrets(&farm);
}
