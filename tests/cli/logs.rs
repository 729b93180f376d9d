//! `logs`: ranged reads, and `-f` following a queue live until its end.

use super::support::{DEADLINE, Farm};

#[test]
fn logs_follow_prints_lines_while_the_queue_runs_and_exits_at_the_end() {
    let farm = Farm::start();
    let cli = farm.cli();
    // `hang` prints its first case, then nothing until the quiet timeout
    // (5 s) fails the test: a window in which the queue is surely running.
    let out = cli.run(&[
        "submit",
        "hang",
        "-s",
        "scenarios/unit.xml",
        "--id",
        "cli-logs",
    ]);
    assert!(out.ok(), "{out:?}");

    let mut test_log = cli.spawn(&["logs", "cli-logs", "-f", "--test", "unit"]);
    let every_log = cli.spawn(&["logs", "cli-logs", "--follow"]);
    test_log.line(DEADLINE, "the first case", |l| l.contains("test_addition"));
    let q = cli.run(&["status", "cli-logs", "--json"]).json();
    assert_eq!(q["status"], "running", "lines come while it runs: {q:#}");

    let out = test_log.finish(DEADLINE);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains("Running test_string_length"), "{out:?}");
    assert!(out.stderr.contains("queue cli-logs failed"), "{out:?}");
    let out = every_log.finish(DEADLINE);
    assert_eq!(out.code, Some(0), "{out:?}");
    for prefix in [
        "queue.log | ",
        "build.log | ",
        "tasks/cli-logs.1/unit.log | ",
    ] {
        assert!(out.stdout.contains(prefix), "{prefix}: {out:?}");
    }

    // Once ended: the files, read in ranges.
    let files = cli.run(&["logs", "cli-logs", "--list", "--json"]).json();
    let paths: Vec<&str> = files
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert!(paths.contains(&"tasks/cli-logs.1/unit.log"), "{paths:?}");
    let out = cli.run(&[
        "logs",
        "cli-logs",
        "--test",
        "cli-logs.1/unit/test_addition",
    ]);
    assert!(out.ok(), "{out:?}");
    assert!(out.stdout.contains("Running test_string_length"), "{out:?}");
    let out = cli.run(&["logs", "cli-logs"]);
    assert!(out.stdout.starts_with("==> queue.log <=="), "{out:?}");
    assert!(out.stdout.contains("==> build.log <=="), "{out:?}");
    let out = cli.run(&["logs", "cli-logs", "--test", "build.log", "--json"]);
    let chunk: serde_json::Value =
        serde_json::from_str(out.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(
        (chunk["path"].as_str(), chunk["offset"].as_u64()),
        (Some("build.log"), Some(0))
    );
    // Following an ended queue prints it all and exits.
    let out = cli.run(&["logs", "cli-logs", "-f", "--test", "unit"]);
    assert!(out.ok() && out.stdout.contains("test_addition"), "{out:?}");

    let out = cli.run(&["logs", "cli-logs", "--test", "nope.log"]);
    assert_eq!(out.code, Some(4), "{out:?}");
    assert!(out.stderr.contains("not_found"), "{out:?}");
}
