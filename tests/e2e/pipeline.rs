//! Submit over HTTP, watch the worker build and boot, read the results.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::Value;

use testarena_testkit::{Farm, Setup, wait_for};

use super::setup;

const QUEUE_DEADLINE: Duration = Duration::from_secs(120);

fn test<'a>(q: &'a Value, name: &str) -> &'a Value {
    q["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["tests"].as_array().unwrap())
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no test {name} in {q:#}"))
}

#[test]
fn a_passing_firmware_with_unity_cases() {
    let farm = Farm::start(setup());
    let id = farm.submit("main", &["scenarios/unit.xml", "scenarios/smoke.xml"]);
    let q = farm.wait_final(&id, QUEUE_DEADLINE);
    assert_eq!(q["status"], "passed", "{q:#}");
    assert_eq!(q["commit"].as_str().map(str::len), Some(40));
    assert_eq!(test(&q, "unit")["status"], "passed");
    let ignored: Vec<_> = q["tasks"][0]["tests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["status"] == "skipped")
        .collect();
    assert_eq!(ignored.len(), 1, "one IGNORE case is skipped: {q:#}");
    assert!(ignored[0]["name"].as_str().unwrap().starts_with("unit/"));
    let unity_passed = q["tasks"][0]["tests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["name"].as_str().unwrap().starts_with("unit/") && t["status"] == "passed")
        .count();
    assert_eq!(unity_passed, 4, "{q:#}");
    for name in ["boot", "elf-exists", "elf-size", "environment"] {
        assert_eq!(test(&q, name)["status"], "passed", "{name}: {q:#}");
    }
    let task = q["tasks"][0]["id"].as_str().unwrap();
    let log = farm.test_log(&id, task, "unit");
    assert!(
        log.contains("Press ENTER to see the list of tests."),
        "{log}"
    );
    assert!(log.contains("Tests 0 Failures"), "{log}");
    // JUnit matches the results.
    let (status, junit) = farm.get_raw(&format!("/api/v1/queues/{id}/junit.xml"));
    assert_eq!(status, 200);
    assert!(junit.contains("failures=\"0\""), "{junit}");
    assert!(junit.contains("<testcase name=\"unit/"), "{junit}");
    assert!(
        !farm.home.join("work").join(&id).exists(),
        "the workspace is removed"
    );
    farm.assert_no_leftovers();
}

#[test]
fn a_failing_unity_case_is_named_with_its_message() {
    let farm = Farm::start(setup());
    let id = farm.submit("fail", &["scenarios/unit.xml"]);
    let q = farm.wait_final(&id, QUEUE_DEADLINE);
    assert_eq!(q["status"], "failed", "{q:#}");
    let case = test(&q, "unit/test_the_answer");
    assert_eq!(case["status"], "failed");
    assert!(
        case["message"]
            .as_str()
            .unwrap()
            .contains("Expected 42 Was 41"),
        "{case}"
    );
    assert_eq!(test(&q, "unit")["message"], "1 unity failures");
    let (_, junit) = farm.get_raw(&format!("/api/v1/queues/{id}/junit.xml"));
    assert!(junit.contains("Expected 42 Was 41"), "{junit}");
    farm.assert_no_leftovers();
}

#[test]
fn a_crash_fails_with_the_crash_line() {
    let farm = Farm::start(setup());
    let id = farm.submit("crash", &["scenarios/unit.xml"]);
    let q = farm.wait_final(&id, QUEUE_DEADLINE);
    assert_eq!(q["status"], "failed", "{q:#}");
    let message = test(&q, "unit")["message"].as_str().unwrap().to_owned();
    assert!(
        message.starts_with("crash: Guru Meditation Error"),
        "{message}"
    );
    farm.assert_no_leftovers();
}

#[test]
fn a_hang_fails_on_the_quiet_timeout_well_before_the_test_timeout() {
    let farm = Farm::start(setup());
    let started = Instant::now();
    let id = farm.submit("hang", &["scenarios/unit.xml"]);
    let q = farm.wait_final(&id, QUEUE_DEADLINE);
    assert_eq!(q["status"], "failed", "{q:#}");
    assert_eq!(test(&q, "unit")["message"], "no output for 5 s");
    assert!(
        started.elapsed() < Duration::from_secs(50),
        "the 60 s test timeout was not needed"
    );
    farm.assert_no_leftovers();
}

#[test]
fn a_build_error_fails_the_queue_and_skips_its_tasks() {
    let farm = Farm::start(setup());
    let id = farm.submit("build-error", &["scenarios/unit.xml"]);
    let q = farm.wait_final(&id, QUEUE_DEADLINE);
    assert_eq!(q["status"], "failed", "{q:#}");
    let reason = q["status_reason"].as_str().unwrap();
    assert!(reason.starts_with("build failed (exit "), "{reason}");
    assert_eq!(q["tasks"][0]["status"], "skipped");
    let (status, build_log) = farm.get_raw(&format!("/api/v1/queues/{id}/logs/build.log"));
    assert_eq!(status, 200);
    assert!(build_log.contains("error"), "{build_log}");
    farm.assert_no_leftovers();
}

#[test]
fn a_flood_passes_and_its_whole_log_is_served_in_pages() {
    let farm = Farm::start(setup());
    let id = farm.submit("flood", &["scenarios/unit.xml"]);
    let q = farm.wait_final(&id, QUEUE_DEADLINE);
    assert_eq!(q["status"], "passed", "{q:#}");
    let task = q["tasks"][0]["id"].as_str().unwrap();
    // On disk (SQLite) or in the database (PostgreSQL).
    let on_disk = farm.stored_file(&id, &format!("tasks/{task}/unit.log"));
    assert!(
        on_disk.len() > 3_000_000,
        "the whole flood is stored: {} bytes",
        on_disk.len()
    );
    assert!(
        on_disk.windows(2).any(|w| w == b"\xff\xfe"),
        "bytes that are not UTF-8 are kept"
    );
    // Read it back in 1 MiB pages through the API.
    let mut offset = 0usize;
    let mut pages = 0;
    loop {
        let (status, _) = farm.get_raw(&format!(
            "/api/v1/queues/{id}/logs/tasks/{task}/unit.log?offset={offset}&limit=1048576"
        ));
        assert_eq!(status, 200);
        pages += 1;
        offset += 1_048_576;
        if offset >= on_disk.len() {
            break;
        }
    }
    assert!(pages >= 3, "{pages}");
    farm.assert_no_leftovers();
}

#[test]
fn abort_a_running_queue_then_delete_it() {
    let farm = Farm::start(Setup {
        abort_grace_s: 1,
        ..setup()
    });
    let id = farm.submit("hang", &["scenarios/unit.xml"]);
    farm.wait_status(&id, "running", QUEUE_DEADLINE);
    // Wait until QEMU is up: its log has the banner.
    wait_for(QUEUE_DEADLINE, "the boot to start", || {
        let q = farm.queue(&id);
        let task = q["tasks"][0]["id"].as_str()?.to_owned();
        let (status, log) =
            farm.get_raw(&format!("/api/v1/queues/{id}/logs/tasks/{task}/unit.log"));
        (status == 200 && log.contains("Press ENTER")).then_some(())
    });
    let asked = Instant::now();
    let status = farm
        .call("POST", &format!("/api/v1/queues/{id}/abort"), None)
        .status;
    assert_eq!(status, 202);
    let q = farm.wait_final(&id, Duration::from_secs(10));
    assert_eq!(q["status"], "aborted", "{q:#}");
    assert_eq!(q["status_reason"], "aborted by admin");
    assert!(
        asked.elapsed() < Duration::from_secs(4),
        "within 2 s + grace: {:?}",
        asked.elapsed()
    );
    farm.assert_no_leftovers();
    assert_eq!(
        farm.call("DELETE", &format!("/api/v1/queues/{id}"), None)
            .status,
        204
    );
    assert_eq!(farm.get_raw(&format!("/api/v1/queues/{id}")).0, 404);
    assert!(!farm.home.join("queues").join(&id).exists());
}

#[test]
fn a_killed_worker_loses_its_queue_and_leaves_nothing_running() {
    let mut farm = Farm::start(setup());
    let id = farm.submit("hang", &["scenarios/unit.xml"]);
    wait_for(QUEUE_DEADLINE, "QEMU to run", || {
        let left = farm.leftovers();
        left.iter()
            .any(|p| p.contains("qemu-system-xtensa"))
            .then_some(())
    });
    farm.stop_worker(0, Signal::SIGKILL);
    // The parent-death signal takes the children with the worker.
    farm.assert_no_leftovers();
    farm.start_worker(0);
    let q = farm.wait_final(&id, Duration::from_secs(30));
    assert_eq!(
        (q["status"].as_str(), q["status_reason"].as_str()),
        (Some("error"), Some("worker lost")),
        "{q:#}"
    );
    farm.assert_no_leftovers();
}

#[test]
fn sigterm_aborts_running_queues_and_exits_within_the_grace() {
    let mut farm = Farm::start(Setup {
        abort_grace_s: 2,
        ..setup()
    });
    let id = farm.submit("hang", &["scenarios/unit.xml"]);
    wait_for(QUEUE_DEADLINE, "QEMU to run", || {
        farm.leftovers()
            .iter()
            .any(|p| p.contains("qemu-system-xtensa"))
            .then_some(())
    });
    let asked = Instant::now();
    let status = farm.stop_worker(0, Signal::SIGTERM);
    let took = asked.elapsed();
    assert!(
        took < Duration::from_secs(4),
        "exit within grace + 2 s: {took:?}"
    );
    assert!(status.success(), "{status:?}\n{}", farm.worker_log(0));
    let q = farm.queue(&id);
    assert_eq!(
        (q["status"].as_str(), q["status_reason"].as_str()),
        (Some("aborted"), Some("worker stopped")),
        "{q:#}\n{}",
        farm.worker_log(0)
    );
    farm.assert_no_leftovers();
}

#[test]
fn events_stream_the_console_live_and_end_with_the_verdict() {
    use std::io::BufRead as _;
    let farm = Farm::start(setup());
    let id = farm.submit("main", &["scenarios/unit.xml"]);
    let events = farm.events(&id);
    let mut statuses = Vec::new();
    let mut console = String::new();
    let mut end = None;
    for line in std::io::BufReader::new(events).lines() {
        let line = line.unwrap();
        if let Some(data) = line.strip_prefix("data: ") {
            let v: Value = serde_json::from_str(data).unwrap();
            if let Some(text) = v["text"].as_str() {
                console.push_str(text);
            } else if v.get("tasks").is_some() {
                statuses.push(v["status"].as_str().unwrap().to_owned());
            }
        }
        if line == "event: end" {
            end = Some(());
        }
        if end.is_some() && line.starts_with("data: ") {
            break;
        }
    }
    assert!(end.is_some(), "the stream ends with `end`");
    assert_eq!(
        statuses.last().map(String::as_str),
        Some("passed"),
        "{statuses:?}"
    );
    assert!(statuses.iter().any(|s| s == "running"), "{statuses:?}");
    assert!(
        console.contains("Press ENTER to see the list of tests."),
        "the console came through: {console}"
    );
    assert!(console.contains("Tests 0 Failures"), "{console}");
    farm.assert_no_leftovers();
}
