//! The app killed with SIGKILL while submissions are in flight: whatever
//! it answered 201 is stored with all its tasks, whatever it stored is
//! whole, and the database is intact.

use std::sync::{Barrier, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;

use super::probe::{check_secrets, wait_for};
use super::{shared, small};
use testarena_testkit::{Farm, Setup};

const SUBMISSIONS: usize = 50;

#[test]
fn the_app_killed_with_50_submissions_in_flight_keeps_every_answered_one() {
    let _quiet = shared();
    let mut farm = Farm::start(Setup {
        start_workers: false,
        ..small()
    });
    let answers = Mutex::new(Vec::new());
    let barrier = Barrier::new(SUBMISSIONS + 1);
    let app = farm.app_pid();
    std::thread::scope(|s| {
        for i in 0..SUBMISSIONS {
            let (farm, answers, barrier) = (&farm, &answers, &barrier);
            s.spawn(move || {
                let id = format!("inflight-{i:02}");
                let body = json!({
                    "id": id,
                    "branch": "main",
                    "tasks": {
                        format!("{id}.a"): "scenarios/quick.xml",
                        format!("{id}.b"): "scenarios/chatty.xml",
                        format!("{id}.c"): "scenarios/quick.xml",
                    },
                });
                barrier.wait();
                let r = farm.call("POST", "/api/v1/queues", Some(&body));
                answers.lock().unwrap().push((id, r.status));
            });
        }
        barrier.wait();
        // Kill once a few are answered: the rest are somewhere between the
        // git checks and the commit.
        wait_for(Duration::from_secs(60), "the first answers", || {
            (answers.lock().unwrap().len() >= 5).then_some(())
        });
        kill(Pid::from_raw(app), Signal::SIGKILL).unwrap();
    });
    farm.stop_app(Signal::SIGKILL);
    let answers = answers.into_inner().unwrap();
    let created: Vec<&String> = answers
        .iter()
        .filter(|(_, s)| *s == 201)
        .map(|(id, _)| id)
        .collect();
    let odd: Vec<_> = answers
        .iter()
        .filter(|(_, s)| ![0, 201].contains(s))
        .collect();
    assert!(odd.is_empty(), "answers other than 201 or none: {odd:?}");
    assert!(
        created.len() < SUBMISSIONS,
        "the kill came after every answer: nothing was in flight"
    );
    assert_eq!(farm.db_integrity(), "ok");

    farm.start_app();
    let mut stored_unanswered = 0;
    for i in 0..SUBMISSIONS {
        let id = format!("inflight-{i:02}");
        let r = farm.call("GET", &format!("/api/v1/queues/{id}"), None);
        let answered = created.contains(&&id);
        match r.status {
            200 => {
                let q = r.json();
                let tasks: Vec<(&str, &str)> = q["tasks"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| (t["id"].as_str().unwrap(), t["scenario"].as_str().unwrap()))
                    .collect();
                let a = format!("{id}.a");
                let b = format!("{id}.b");
                let c = format!("{id}.c");
                assert_eq!(
                    tasks,
                    [
                        (a.as_str(), "scenarios/quick.xml"),
                        (b.as_str(), "scenarios/chatty.xml"),
                        (c.as_str(), "scenarios/quick.xml"),
                    ],
                    "{q:#}"
                );
                assert_eq!(q["status"], "waiting");
                if !answered {
                    stored_unanswered += 1;
                }
            }
            404 => assert!(!answered, "{id} was answered 201 and is gone"),
            other => panic!("GET {id}: {other} {}", r.body),
        }
    }
    println!(
        "app SIGKILL: {} of {SUBMISSIONS} submissions answered 201 before the kill, all stored with their 3 tasks; {stored_unanswered} more stored whole without an answer; integrity ok",
        created.len()
    );
    check_secrets(&farm);
}
