//! submit, status, list, abort, delete, rerun and junit through the CLI.

use std::time::Duration;

use super::support::{DEADLINE, Farm};

#[test]
fn submit_wait_exits_with_the_verdict_and_names_the_failing_case() {
    let farm = Farm::start();
    let cli = farm.cli();

    let out = cli.run(&["submit", "main", "-s", "scenarios/unit.xml", "--wait"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout.contains("passed   unit/test_the_answer"),
        "{out:?}"
    );
    assert!(
        out.stdout.lines().last().unwrap().contains(" passed: "),
        "{out:?}"
    );

    let out = cli.run(&[
        "submit",
        "fail",
        "-s",
        "scenarios/unit.xml",
        "--id",
        "cli-fail",
        "--wait",
    ]);
    assert_eq!(out.code, Some(1), "{out:?}");
    let failing = out
        .stdout
        .lines()
        .find(|l| l.contains("unit/test_the_answer") && l.contains("failed"))
        .unwrap_or_else(|| panic!("no failing case line: {out:?}"));
    assert!(failing.contains("Expected 42 Was 41"), "{failing}");
    assert!(out.stdout.contains("failures:"), "{out:?}");
    assert!(
        !out.stdout.contains('\x1b'),
        "no colour into a pipe: {out:?}"
    );

    // --json prints the API's JSON: the final queue after --wait.
    let out = cli.run(&[
        "submit",
        "main",
        "-s",
        "scenarios/smoke.xml",
        "--wait",
        "--json",
    ]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let q = out.json();
    assert_eq!(q["status"], "passed");
    assert_eq!(q["tasks"][0]["tests"].as_array().unwrap().len(), 4, "{q:#}");

    let q = cli.run(&["status", "cli-fail", "--json"]).json();
    assert_eq!(q["status"], "failed");
    let human = cli.run(&["status", "cli-fail"]);
    assert!(human.ok(), "{human:?}");
    assert!(
        human.stdout.contains("cli-fail.1/unit/test_the_answer"),
        "{human:?}"
    );

    let all = cli.run(&["list", "--json"]).json();
    assert_eq!(all["items"].as_array().unwrap().len(), 3, "{all:#}");
    let failed = cli.run(&["list", "--status", "failed", "--json"]).json();
    let ids: Vec<_> = failed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| &q["id"])
        .collect();
    assert_eq!(ids, ["cli-fail"]);
    // Pages of one, followed to the end.
    let paged = cli.run(&["list", "--limit", "1", "--all", "--json"]).json();
    assert_eq!(paged["items"], all["items"]);
    let table = cli.run(&["list"]);
    assert!(table.stdout.starts_with("ID "), "{table:?}");

    let file = farm.dir.join("junit.xml");
    let out = cli.run(&["junit", "cli-fail", "-o", file.to_str().unwrap()]);
    assert!(out.ok(), "{out:?}");
    let xml = std::fs::read_to_string(&file).unwrap();
    let (cases, failures) = count_junit(&xml);
    assert_eq!((cases, failures), (6, 2), "{xml}");
    assert!(xml.contains("unit/test_the_answer"), "{xml}");

    let out = cli.run(&["submit", "nope", "-s", "scenarios/unit.xml"]);
    assert_eq!(out.code, Some(4), "{out:?}");
    assert!(
        out.stderr
            .starts_with("error: validation_failed (branch): "),
        "{out:?}"
    );
}

/// Parses the whole document; counts `<testcase>` and `<failure>`.
fn count_junit(xml: &str) -> (usize, usize) {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let (mut cases, mut failures) = (0, 0);
    loop {
        match reader.read_event().expect("well-formed XML") {
            Event::Start(e) | Event::Empty(e) => match e.name().as_ref() {
                b"testcase" => cases += 1,
                b"failure" => failures += 1,
                _ => {}
            },
            Event::Eof => return (cases, failures),
            _ => {}
        }
    }
}

#[test]
fn abort_from_another_shell_ends_wait_with_3_then_delete_and_rerun() {
    let farm = Farm::start();
    let cli = farm.cli();

    // The `hang` firmware stops after its first case until the quiet timeout.
    let mut waiting = cli.spawn(&[
        "submit",
        "hang",
        "-s",
        "scenarios/unit.xml",
        "--id",
        "cli-hang",
        "--wait",
    ]);
    waiting.line(DEADLINE, "the first verdict", |l| {
        l.contains("passed") && l.contains("unit/test_addition")
    });
    let out = cli.run(&["abort", "cli-hang"]);
    assert!(out.ok(), "{out:?}");
    let out = waiting.finish(Duration::from_secs(30));
    assert_eq!(out.code, Some(3), "{out:?}");
    assert!(out.stdout.contains("aborted by admin"), "{out:?}");

    let again = cli.run(&["abort", "cli-hang"]);
    assert_eq!(again.code, Some(4), "{again:?}");
    assert!(again.stderr.contains("conflict"), "{again:?}");

    let out = cli.run(&["delete", "cli-hang"]);
    assert!(out.ok(), "{out:?}");
    let gone = cli.run(&["status", "cli-hang"]);
    assert_eq!(gone.code, Some(4), "{gone:?}");
    assert!(gone.stderr.contains("not_found"), "{gone:?}");

    let out = cli.run(&[
        "submit",
        "main",
        "-s",
        "scenarios/smoke.xml",
        "--id",
        "cli-once",
    ]);
    assert!(out.ok(), "{out:?}");
    assert_eq!(out.stdout.trim(), "cli-once");
    let out = cli.run(&["rerun", "cli-once", "--wait", "--json"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let rerun = out.json();
    assert_ne!(rerun["id"], "cli-once");
    assert_eq!(rerun["status"], "passed");
    assert_eq!(rerun["tasks"][0]["scenario"], "scenarios/smoke.xml");

    // The original runs beside its rerun (2 slots): it may still be
    // running, and a running queue cannot be deleted. Wait for it too.
    let out = cli.run(&["status", "cli-once", "--wait"]);
    assert_eq!(out.code, Some(0), "{out:?}");

    // A waiting or ended queue can be deleted; several at once.
    let out = cli.run(&[
        "delete",
        "cli-once",
        rerun["id"].as_str().unwrap(),
        "--json",
    ]);
    assert!(out.ok(), "{out:?}");
    assert_eq!(out.stdout.lines().count(), 2, "{out:?}");
    let left = cli.run(&["list", "--json"]).json();
    assert_eq!(left["items"], serde_json::json!([]), "{left:#}");
}

#[test]
fn wait_rides_out_a_crash_of_the_app() {
    let mut farm = Farm::start();
    let cli = farm.cli();
    let mut waiting = cli.spawn(&[
        "submit",
        "hang",
        "-s",
        "scenarios/unit.xml",
        "--id",
        "cli-restart",
        "--wait",
    ]);
    waiting.line(DEADLINE, "the first verdict", |l| {
        l.contains("unit/test_addition")
    });
    // The stream breaks; the worker goes on. The CLI reconnects to the new
    // app and sees the end (the quiet timeout fails the hung test).
    farm.crash_and_restart_app();
    let out = waiting.finish(DEADLINE);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stdout.contains("no output for 5 s"), "{out:?}");
    let verdicts = out.stdout.matches("unit/test_addition").count();
    assert_eq!(verdicts, 1, "no verdict twice after reconnecting: {out:?}");
}
