//! Hostile repositories: scenario files that are links out of the
//! repository, 50 MB large or full of entities are refused at submit (422),
//! and a branch that turns hostile after a submission does not reach the
//! queue, which runs the commit it was checked at (pinned commits); a
//! build or a test that prints a 10 MB line without a newline is logged to
//! disk in bounded memory.

use std::time::{Duration, Instant};

use serde_json::json;

use super::probe::{check_secrets, contains, read_lossy, vm_kb, wait_for};
use super::{shared, small};
use testarena_testkit::repo::{Content, QUICK};
use testarena_testkit::{Farm, Setup};

/// A comment padded to 50 MB: valid XML, far over the 1 MiB limit.
fn huge_scenario() -> String {
    let mut text = String::with_capacity(50 << 20);
    text.push_str("<!-- ");
    text.extend(std::iter::repeat_n('a', 50 << 20));
    text.push_str(" -->\n");
    text.push_str(QUICK.trim_start_matches("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"));
    text
}

/// The billion laughs: nine levels of ten references.
fn entities_scenario() -> String {
    let mut text = String::from("<?xml version=\"1.0\"?>\n<!DOCTYPE scenario [\n");
    text.push_str("  <!ENTITY lol0 \"lol\">\n");
    for i in 1..10 {
        let refs = format!("&lol{};", i - 1).repeat(10);
        text.push_str(&format!("  <!ENTITY lol{i} \"{refs}\">\n"));
    }
    text.push_str(
        "]>\n<scenario name=\"&lol9;\">\n  <test name=\"t\"><run>true</run></test>\n</scenario>\n",
    );
    text
}

/// The first line of /etc/passwd, which must never show up in a log.
fn passwd_line() -> String {
    std::fs::read_to_string("/etc/passwd")
        .unwrap_or_default()
        .lines()
        .next()
        .unwrap_or("root:x:0:0:")
        .to_owned()
}

#[test]
fn hostile_scenarios_are_refused_at_submit_and_a_tip_made_hostile_later_never_runs() {
    let _quiet = shared();
    let mut farm = Farm::start(Setup {
        start_workers: false,
        ..small()
    });
    let repo = farm.repo.clone();
    repo.commit(
        "evil",
        &[
            ("scenarios/passwd.xml", Content::Link("/etc/passwd".into())),
            (
                "scenarios/up.xml",
                Content::Link("../../../../etc/passwd".into()),
            ),
            ("scenarios/huge.xml", Content::Text(huge_scenario())),
            ("scenarios/entities.xml", Content::Text(entities_scenario())),
        ],
    );
    let app = farm.app_pid();
    let hwm_before = vm_kb(app, "VmHWM").unwrap();

    let refused = |path: &str, words: &str| {
        let started = Instant::now();
        let r = farm.call(
            "POST",
            "/api/v1/queues",
            Some(&json!({"branch": "evil", "scenarios": [path]})),
        );
        let took = started.elapsed();
        assert_eq!(r.status, 422, "{path}: {}", r.body);
        let e = &r.json()["error"];
        assert_eq!(e["code"], "validation_failed", "{}", r.body);
        assert_eq!(e["field"], "scenarios[0]", "{}", r.body);
        let message = e["message"].as_str().unwrap().to_owned();
        assert!(message.contains(words), "{path}: {message}");
        assert!(!contains(r.body.as_bytes(), passwd_line().as_bytes()));
        (took, message)
    };
    let (_, link) = refused("scenarios/passwd.xml", "symbolic link");
    refused("scenarios/up.xml", "symbolic link");
    // The first submission fetched the branch, 50 MB blob included (git
    // indexes it); the refusal itself reads only the blob's header.
    let fetched_mb = vm_kb(app, "VmHWM").unwrap().saturating_sub(hwm_before) / 1024;
    let (took, huge) = refused("scenarios/huge.xml", "over the limit");
    assert!(took < Duration::from_secs(2), "50 MB refused in {took:?}");
    let (_, doctype) = refused("scenarios/entities.xml", "DOCTYPE");
    let grew_mb = vm_kb(app, "VmHWM").unwrap().saturating_sub(hwm_before) / 1024;
    // Reading the file would have held all 50 MB at once.
    assert!(
        grew_mb < 48,
        "the app's peak memory grew by {grew_mb} MB: a 50 MB scenario was read"
    );
    assert!(
        farm.call("GET", "/api/v1/queues?limit=1", None).json()["items"]
            .as_array()
            .unwrap()
            .is_empty(),
        "nothing was stored"
    );

    // Valid at submit time, hostile by the time a worker claims the queue:
    // the queue runs the commit that was checked, not the branch's new tip.
    let checked = repo.commit(
        "flip",
        &[
            ("scenarios/other.xml", Content::Text(QUICK.into())),
            ("scenarios/entities.xml", Content::Text(QUICK.into())),
        ],
    );
    let id = farm.submit_with(
        "flip",
        &[
            "scenarios/quick.xml",
            "scenarios/other.xml",
            "scenarios/entities.xml",
        ],
        json!({"id": "flip-1"}),
    );
    let hostile = repo.commit(
        "flip",
        &[
            ("scenarios/quick.xml", Content::Link("/etc/passwd".into())),
            ("scenarios/other.xml", Content::Text(huge_scenario())),
            ("scenarios/entities.xml", Content::Text(entities_scenario())),
        ],
    );
    farm.start_worker(0);
    let worker = farm.worker_pid(0);
    let q = farm.wait_final(&id, Duration::from_secs(60));
    assert_eq!(q["status"], "passed", "{q:#}");
    assert_eq!(q["commit"], checked, "{q:#}");
    let tasks = q["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 3, "{q:#}");
    for t in tasks {
        assert_eq!(t["status"], "passed", "{t:#}");
    }
    let mut logs = farm.queue_log(&id);
    assert!(logs.contains(&format!("commit {checked} (flip)")), "{logs}");
    assert!(!logs.contains(&hostile), "{logs}");
    logs.push_str(&read_lossy(
        &farm.home.join("queues").join(&id).join("build.log"),
    ));
    assert!(!logs.contains(&passwd_line()), "{logs}");
    let worker_hwm = vm_kb(worker, "VmHWM").unwrap();
    assert!(worker_hwm < 100 * 1024, "worker peak {worker_hwm} kB");

    // The worker is unharmed.
    let next = farm.submit("main", &["scenarios/quick.xml"]);
    assert_eq!(
        farm.wait_final(&next, Duration::from_secs(60))["status"],
        "passed"
    );
    println!(
        "hostile scenarios: refused at submit: link ({link}), 50 MB in {:.0} ms ({huge}; app peak +{fetched_mb} MB after the fetch, +{grew_mb} MB in all), entities ({doctype}); after the branch turned hostile the queue ran its checked commit {} and passed (worker peak {} MB)",
        took.as_secs_f64() * 1000.0,
        &checked[..12],
        worker_hwm / 1024
    );
    check_secrets(&farm);
    farm.assert_no_leftovers();
}

/// A build that prints 10 MB without a newline, and a test that does too.
const LONG_LINE: &str = r#"
[targets.longline]
build = ["sh", "-c", "head -c 10485760 /dev/zero | tr '\\000' x"]
qemu = ["false"]
"#;

const LONG_LINE_SCENARIO: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<scenario name="longline" timeout="120">
  <test name="line" timeout="100">
    <run>head -c 10485760 /dev/zero | tr '\000' y</run>
  </test>
</scenario>
"#;

const TEN_MB: u64 = 10 * 1024 * 1024;

#[test]
fn a_10_mb_line_without_a_newline_is_logged_in_bounded_memory() {
    let _quiet = shared();
    let farm = Farm::start(Setup {
        targets: LONG_LINE.into(),
        default_target: "longline".into(),
        slots: 1,
        ..small()
    });
    farm.repo.commit(
        "long",
        &[(
            "scenarios/longline.xml",
            Content::Text(LONG_LINE_SCENARIO.into()),
        )],
    );
    let worker = farm.worker_pid(0);
    let id = farm.submit("long", &["scenarios/longline.xml"]);
    let q = farm.wait_final(&id, Duration::from_secs(120));
    assert_eq!(q["status"], "passed", "{q:#}");
    let dir = farm.home.join("queues").join(&id);
    let task = q["tasks"][0]["id"].as_str().unwrap();
    let build = std::fs::metadata(dir.join("build.log")).unwrap().len();
    let test = std::fs::metadata(dir.join("tasks").join(task).join("line.log"))
        .unwrap()
        .len();
    assert!(build >= TEN_MB, "build.log has {build} bytes");
    assert!(test >= TEN_MB, "line.log has {test} bytes");
    // Served like any log: the last bytes of the line, by range.
    let r = farm.call(
        "GET",
        &format!(
            "/api/v1/queues/{id}/logs/build.log?offset={}&limit=16",
            build - 16
        ),
        None,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "x".repeat(16));
    let hwm = vm_kb(worker, "VmHWM").unwrap();
    assert!(hwm < 200 * 1024, "the worker's peak memory is {hwm} kB");
    wait_for(Duration::from_secs(5), "the worker to be idle", || {
        farm.call("GET", "/api/v1/health", None).json()["workers"][0]["running"]
            .as_array()
            .is_some_and(Vec::is_empty)
            .then_some(())
    });
    // Unharmed: the next queue runs.
    let next = farm.submit_with("main", &["scenarios/quick.xml"], json!({"target": "noop"}));
    assert_eq!(
        farm.wait_final(&next, Duration::from_secs(60))["status"],
        "passed"
    );
    println!(
        "10 MB line: build.log {build} bytes, line.log {test} bytes, queue passed; worker peak RSS {} MB",
        hwm / 1024
    );
    check_secrets(&farm);
    farm.assert_no_leftovers();
}
