//! Deliveries are retried and survive restarts; a forge that fails or hangs
//! holds up no queue. The small repository (`<run>` scenarios).

use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;
use testarena_testkit::forge_standin::Answer;
use testarena_testkit::wait_for;

use super::{DEADLINE, Forged, Kind, Options, forged, toml};

const QUICK: &str = "[[push]]\nbranches = [\"main\"]\nscenarios = [\"scenarios/quick.xml\"]\n";

/// The answers the stand-in gave to `state` on `context` for `sha`, in order.
fn answered(f: &Forged, sha: &str, state: &str, context: &str) -> Vec<u16> {
    f.standin
        .statuses(sha)
        .iter()
        .filter(|r| r.state_and_context() == (state.to_owned(), context.to_owned()))
        .map(|r| r.answered)
        .collect()
}

#[test]
fn a_status_answered_500_twice_lands_on_the_third_try() {
    let f = forged(Options::small(Kind::Gitea));
    f.standin
        .answer_next(Some("success"), Some("testarena"), 2, Answer::Status(500));
    let (sha, sent) = f.push("main", &[toml(QUICK)]);
    let id = Forged::queues_of(&sent).remove(0);
    assert_eq!(f.farm.wait_final(&id, DEADLINE)["status"], "passed");
    let d = f.wait_delivery(&id, "success", Some("testarena"), |d| {
        d["state"] == "delivered"
    });
    assert_eq!(
        (d["attempts"].as_i64(), d["last_code"].as_i64()),
        (Some(3), Some(201)),
        "{d}"
    );
    assert_eq!(answered(&f, &sha, "success", "testarena"), [500, 500, 201]);
    // The task's status was not held up by the queue's.
    let task = f.wait_delivery(&id, "success", Some("testarena/scenarios/quick.xml"), |d| {
        d["state"] == "delivered"
    });
    assert_eq!(task["attempts"], 1);
}

/// A queue's status as the database holds it, read with the sqlite3 tool
/// (the app is down).
fn stored_status(f: &Forged, id: &str) -> String {
    let out = Command::new("sqlite3")
        .arg("-readonly")
        .arg(f.farm.db_path())
        .arg(format!("SELECT status FROM queues WHERE id = '{id}';"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn the_app_restarted_while_a_queue_ends_and_between_tries_still_delivers() {
    let mut f = forged(Options {
        start_worker: false,
        ..Options::small(Kind::Gitea)
    });
    let (sha, sent) = f.push("main", &[toml(QUICK)]);
    let id = Forged::queues_of(&sent).remove(0);
    // The queue runs and ends while the app is down.
    f.farm.stop_app(Signal::SIGTERM);
    f.farm.start_worker(0);
    wait_for(DEADLINE, "the queue to end, app down", || {
        (stored_status(&f, &id) == "passed").then_some(())
    });
    assert!(
        f.standin.statuses(&sha).is_empty(),
        "nobody sent anything yet"
    );
    // Back up: the changes recorded meanwhile are sent; the first try of
    // the verdict fails with "come back in 4 s", and the app is stopped
    // before its second.
    f.standin
        .answer_next(Some("success"), Some("testarena"), 1, Answer::Later(503, 4));
    f.farm.start_app();
    let failed_once = f.wait_delivery(&id, "success", Some("testarena"), |d| d["attempts"] == 1);
    assert_eq!(
        (
            failed_once["state"].as_str(),
            failed_once["last_code"].as_i64()
        ),
        (Some("pending"), Some(503))
    );
    f.farm.stop_app(Signal::SIGTERM);
    f.farm.start_app();
    let d = f.wait_delivery(&id, "success", Some("testarena"), |d| {
        d["state"] == "delivered"
    });
    assert_eq!(
        (d["attempts"].as_i64(), d["last_code"].as_i64()),
        (Some(2), Some(201))
    );
    assert_eq!(answered(&f, &sha, "success", "testarena"), [503, 201]);
    f.wait_status(&sha, "success", "testarena/scenarios/quick.xml");
}

#[test]
fn a_hanging_forge_holds_up_no_queue_and_its_status_lands_after_the_timeout() {
    let f = forged(Options::small(Kind::Gitea));
    // The first status request hangs past the app's 10 s timeout.
    f.standin.answer_next(
        None,
        Some("testarena"),
        1,
        Answer::Hang(Duration::from_secs(13)),
    );
    let (sha, sent) = f.push("main", &[toml(QUICK)]);
    let id = Forged::queues_of(&sent).remove(0);
    let done = f.farm.wait_final(&id, Duration::from_secs(8));
    assert_eq!(
        done["status"], "passed",
        "the queue did not wait for the forge"
    );
    let d = f.wait_delivery(&id, "success", Some("testarena"), |d| {
        d["state"] == "delivered"
    });
    // The request that hung was `pending` (then superseded by the verdict,
    // with why it failed) or the verdict's first try (then tried again).
    let all = f.deliveries_of(&id);
    let pending = all
        .iter()
        .find(|d| d["event"] == "pending" && d["context"] == "testarena")
        .unwrap();
    let timed_out = pending["last_error"]
        .as_str()
        .is_some_and(|e| e.contains("no answer within 10 s"));
    assert!(
        (timed_out && pending["state"] == "superseded") || d["attempts"] == 2,
        "{all:#?}"
    );
    assert_eq!(
        f.states(&sha, "testarena").last().map(String::as_str),
        Some("success")
    );
}
