//! Pinned commits: a queue runs the commit resolved when it was submitted
//! (shown in the 201 answer's `commit`), not whatever its branch points at
//! when a worker gets to it; a submission may name an older commit of the
//! branch by an abbreviated sha; a commit the repository lacks is a 422 on
//! `commit`.
//!
//! The branch is moved to a firmware that fails its Unity case, so which
//! commit ran shows in the verdict as well as in the timeline's
//! `commit <sha> (<branch>)` line.

use std::time::Duration;

use serde_json::{Value, json};
use testarena_testkit::repo::Content;
use testarena_testkit::{Farm, Setup};

use super::setup;

const DEADLINE: Duration = Duration::from_secs(120);

/// Moves `main` to a commit whose firmware fails `unit/test_the_answer`;
/// returns its sha.
fn break_main(farm: &Farm) -> String {
    farm.repo.commit(
        "main",
        &[(
            "behaviour.mk",
            Content::Text("# main, moved by the test\nBEHAVIOUR = fail\n".into()),
        )],
    )
}

/// Submits `body` and returns the 201 answer.
fn submit(farm: &Farm, body: &Value) -> Value {
    let r = farm.call("POST", "/api/v1/queues", Some(body));
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()
}

fn case_status(q: &Value, name: &str) -> String {
    q["tasks"][0]["tests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .map(|t| t["status"].as_str().unwrap().to_owned())
        .unwrap_or_else(|| panic!("no test {name} in {q:#}"))
}

#[test]
fn a_queue_that_waited_while_the_branch_moved_runs_the_submitted_commit() {
    let mut farm = Farm::start(Setup {
        start_workers: false,
        ..setup()
    });
    let tip = farm.repo.rev_parse("main");
    let answer = submit(
        &farm,
        &json!({"branch": "main", "scenarios": ["scenarios/unit.xml"]}),
    );
    assert_eq!(answer["status"], "waiting", "{answer:#}");
    assert_eq!(
        answer["commit"], tip,
        "the 201 answer names the tip at submit time: {answer:#}"
    );
    let id = answer["id"].as_str().unwrap().to_owned();

    // The branch moves while the queue waits (no worker runs).
    let moved = break_main(&farm);
    assert_ne!(moved, tip);
    let later = submit(
        &farm,
        &json!({"branch": "main", "scenarios": ["scenarios/unit.xml"]}),
    );
    assert_eq!(later["commit"], moved, "a new submission gets the new tip");
    let later_id = later["id"].as_str().unwrap().to_owned();
    assert_eq!(farm.queue(&id)["commit"], tip, "stored as submitted");

    farm.start_worker(0);
    let q = farm.wait_final(&id, DEADLINE);
    assert_eq!(q["status"], "passed", "the submitted firmware ran: {q:#}");
    assert_eq!(q["commit"], tip, "{q:#}");
    assert_eq!(case_status(&q, "unit/test_the_answer"), "passed");
    let timeline = farm.queue_log(&id);
    assert!(
        timeline.contains(&format!("commit {tip} (main)")),
        "{timeline}"
    );
    assert!(!timeline.contains(&moved), "{timeline}");

    // The queue submitted after the move runs the moved branch.
    let q = farm.wait_final(&later_id, DEADLINE);
    assert_eq!(q["status"], "failed", "{q:#}");
    assert_eq!(q["commit"], moved, "{q:#}");
    assert_eq!(case_status(&q, "unit/test_the_answer"), "failed");
    let timeline = farm.queue_log(&later_id);
    assert!(
        timeline.contains(&format!("commit {moved} (main)")),
        "{timeline}"
    );
    farm.assert_no_leftovers();
}

#[test]
fn a_submission_naming_an_older_commit_runs_it_and_an_unknown_one_is_422() {
    let farm = Farm::start(setup());
    let old = farm.repo.rev_parse("main");
    let tip = break_main(&farm);
    let short = &old[..7];

    let answer = submit(
        &farm,
        &json!({"branch": "main", "commit": short, "scenarios": ["scenarios/unit.xml"]}),
    );
    assert_eq!(
        answer["commit"], old,
        "the abbreviated sha is resolved to the full one: {answer:#}"
    );
    let id = answer["id"].as_str().unwrap().to_owned();
    let q = farm.wait_final(&id, DEADLINE);
    assert_eq!(q["status"], "passed", "the older firmware ran: {q:#}");
    assert_eq!(q["commit"], old, "{q:#}");
    assert_eq!(case_status(&q, "unit/test_the_answer"), "passed");
    let timeline = farm.queue_log(&id);
    assert!(
        timeline.contains(&format!("commit {old} (main)")),
        "{timeline}"
    );
    assert!(!timeline.contains(&tip), "{timeline}");

    // A commit that is not in the repository.
    let r = farm.call(
        "POST",
        "/api/v1/queues",
        Some(&json!({"branch": "main", "commit": "0000000", "scenarios": ["scenarios/unit.xml"]})),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    let error = &r.json()["error"];
    assert_eq!(error["code"], "validation_failed", "{}", r.body);
    assert_eq!(error["field"], "commit", "{}", r.body);
    farm.assert_no_leftovers();
}
