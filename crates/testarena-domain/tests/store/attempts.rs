//! Attempts: a farm failure retried (`running` → `waiting`, attempt + 1)
//! in one transaction; everything else ends the queue.

use std::time::Duration;

use diesel::prelude::*;
use testarena_domain::api::Queue;
use testarena_domain::models::NewTestCase;
use testarena_domain::schema::workers;
use testarena_domain::status::Status;
use testarena_domain::store::{self, EndOutcome, QueueEnd};

use super::{add, test_db};

const LOST: QueueEnd<'static> = QueueEnd {
    status: Status::Error,
    reason: "worker lost",
    farm_failure: true,
};

fn case(name: &str, status: Status) -> NewTestCase {
    NewTestCase {
        name: name.into(),
        status,
        duration_ms: Some(12),
        message: (status != Status::Passed).then(|| format!("{name} went wrong")),
    }
}

#[test]
fn a_farm_failure_is_retried_with_the_attempt_recorded() {
    let db = test_db();
    add(&db, "q1", 2);
    let mut conn = db.pool.get().unwrap();
    store::claim_next(&mut conn, "w1").unwrap().unwrap();
    store::set_task(&mut conn, "q1.1", Status::Running, None).unwrap();
    store::record_test_case(&mut conn, "q1.1", &case("unit", Status::Passed)).unwrap();
    store::record_test_case(&mut conn, "q1.1", &case("size", Status::Failed)).unwrap();
    store::set_task(&mut conn, "q1.1", Status::Failed, Some("size failed")).unwrap();
    store::set_task(&mut conn, "q1.2", Status::Running, None).unwrap();
    store::set_pgid(&mut conn, "q1", Some(4242)).unwrap();

    let out = store::end_queue(&mut conn, "q1", LOST, 1).unwrap();
    let EndOutcome::Retried(row) = out else {
        panic!("not retried: {out:?}");
    };
    assert_eq!((row.status(), row.attempt), (Status::Waiting, 2));
    assert_eq!(
        row.status_reason.as_deref(),
        Some("retrying after: worker lost (attempt 2 of 2)")
    );
    assert_eq!(
        (row.worker_id, row.pgid, row.started_at, row.finished_at),
        (None, None, None, None)
    );
    let d = store::queue_detail(&mut conn, "q1").unwrap().unwrap();
    // The next attempt starts with new tasks: waiting, no results.
    for (task, cases) in &d.tasks {
        assert_eq!(task.status(), Status::Waiting, "{}", task.id);
        assert_eq!(
            (task.passed, task.failed, task.status_reason.clone()),
            (0, 0, None)
        );
        assert!(cases.is_empty(), "{cases:?}");
    }
    // The ended attempt keeps its worker, times, verdict and results.
    assert_eq!(d.attempts.len(), 1);
    let a = &d.attempts[0];
    assert_eq!((a.attempt, a.worker.as_deref()), (1, Some("w1")));
    assert_eq!(
        (a.status(), a.reason.as_deref()),
        (Status::Error, Some("worker lost"))
    );
    assert!(a.started_at.is_some_and(|s| s <= a.finished_at));
    let results: serde_json::Value = serde_json::from_str(&a.results).unwrap();
    assert_eq!(results[0]["id"], "q1.1");
    assert_eq!(results[0]["status"], "failed");
    assert_eq!(results[0]["tests"][1]["message"], "size went wrong");
    assert_eq!(results[1]["status"], "running");
    let json = serde_json::to_value(Queue::from(&d)).unwrap();
    assert_eq!(json["attempt"], 2);
    assert_eq!(json["attempts"][0]["attempt"], 1);
    assert_eq!(json["attempts"][0]["ran_on"], "qemu");
    assert_eq!(json["attempts"][0]["worker"], "w1");
    assert_eq!(json["attempts"][0]["reason"], "worker lost");

    // The second attempt is claimed like any waiting queue and, out of
    // retries, ends for good.
    let again = store::claim_next(&mut conn, "w2").unwrap().unwrap();
    assert_eq!((again.id.as_str(), again.attempt), ("q1", 2));
    let out = store::end_queue(&mut conn, "q1", LOST, 1).unwrap();
    let EndOutcome::Finished(row) = out else {
        panic!("retried past retry_errors: {out:?}");
    };
    assert_eq!(
        (row.status(), row.status_reason.as_deref(), row.attempt),
        (Status::Error, Some("worker lost"), 2)
    );
    let d = store::queue_detail(&mut conn, "q1").unwrap().unwrap();
    assert_eq!(d.attempts.len(), 1);
    assert!(d.tasks.iter().all(|(t, _)| t.status() == Status::Skipped));
}

#[test]
fn only_farm_failures_with_attempts_left_are_retried() {
    let db = test_db();
    let ends = [
        // (what, end, retry_errors, retried)
        ("farm, none allowed", LOST, 0, false),
        ("farm", LOST, 3, true),
        (
            "a test failure",
            QueueEnd {
                status: Status::Failed,
                reason: "1 of 1 tasks failed",
                farm_failure: false,
            },
            3,
            false,
        ),
        (
            "a bad scenario",
            QueueEnd {
                status: Status::Error,
                reason: "1 of 1 tasks had errors",
                farm_failure: false,
            },
            3,
            false,
        ),
        (
            "an abort flagged as farm",
            QueueEnd {
                status: Status::Aborted,
                reason: "timed out",
                farm_failure: true,
            },
            3,
            false,
        ),
    ];
    for (i, (what, end, retry_errors, retried)) in ends.into_iter().enumerate() {
        let id = format!("q{i}");
        add(&db, &id, 1);
        let mut conn = db.pool.get().unwrap();
        let claimed = store::claim_next(&mut conn, "w1").unwrap().unwrap();
        assert_eq!(claimed.id, id);
        let out = store::end_queue(&mut conn, &id, end, retry_errors).unwrap();
        assert_eq!(matches!(out, EndOutcome::Retried(_)), retried, "{what}");
        if retried {
            // Out of the way of the next claim.
            let admin = store::Actor {
                name: "admin",
                admin: true,
            };
            store::request_abort(&mut conn, &id, "done", admin).unwrap();
        } else {
            assert_eq!(out.row().status(), end.status, "{what}");
            assert!(store::attempts_of(&mut conn, &id).unwrap().is_empty());
        }
    }
}

#[test]
fn an_abort_asked_for_is_not_retried_and_a_final_queue_not_moved() {
    let db = test_db();
    add(&db, "q1", 1);
    let mut conn = db.pool.get().unwrap();
    store::claim_next(&mut conn, "w1").unwrap().unwrap();
    store::request_abort(
        &mut conn,
        "q1",
        "aborted by ann",
        store::Actor {
            name: "ann",
            admin: false,
        },
    )
    .unwrap();
    let out = store::end_queue(&mut conn, "q1", LOST, 3).unwrap();
    assert!(matches!(out, EndOutcome::Finished(_)), "{out:?}");
    // Ended: a second end (a late worker) is refused, retry or not.
    let err = store::end_queue(&mut conn, "q1", LOST, 3).unwrap_err();
    assert!(err.to_string().contains("error -> error"), "{err}");
}

#[test]
fn at_most_three_retries_whatever_the_caller_asks() {
    let db = test_db();
    add(&db, "q1", 1);
    let mut conn = db.pool.get().unwrap();
    let mut reasons = Vec::new();
    loop {
        store::claim_next(&mut conn, "w1").unwrap().unwrap();
        match store::end_queue(&mut conn, "q1", LOST, 99).unwrap() {
            EndOutcome::Retried(row) => reasons.push(row.status_reason.unwrap()),
            EndOutcome::Finished(row) => {
                assert_eq!(row.attempt, 4);
                break;
            }
        }
    }
    assert_eq!(
        reasons.last().unwrap(),
        "retrying after: worker lost (attempt 4 of 4)"
    );
    let attempts = store::attempts_of(&mut conn, "q1").unwrap();
    let numbers: Vec<_> = attempts.iter().map(|a| a.attempt).collect();
    assert_eq!(numbers, [1, 2, 3]);
}

#[test]
fn a_lost_worker_s_queue_is_retried_by_the_recovery() {
    let db = test_db();
    add(&db, "q1", 1);
    let mut conn = db.pool.get().unwrap();
    store::register_worker(&mut conn, "ghost", 1, "0.1.0", 2).unwrap();
    store::claim_next(&mut conn, "ghost").unwrap().unwrap();
    store::set_pgid(&mut conn, "q1", Some(777)).unwrap();
    // The ghost's last heartbeat a minute ago: lost after 40 ms.
    diesel::update(workers::table.find("ghost"))
        .set(workers::last_seen.eq(store::now() - chrono::Duration::seconds(60)))
        .execute(&mut conn)
        .unwrap();
    let lost =
        store::mark_lost(&mut conn, "me", store::now(), Duration::from_millis(40), 1).unwrap();
    assert_eq!(lost.len(), 1);
    assert!(lost[0].retried);
    assert_eq!((lost[0].queue.pgid, lost[0].queue.attempt), (Some(777), 1));
    let q = store::get_queue(&mut conn, "q1").unwrap().unwrap();
    assert_eq!((q.status(), q.attempt), (Status::Waiting, 2));
    let a = store::attempts_of(&mut conn, "q1").unwrap();
    assert_eq!(a[0].worker.as_deref(), Some("ghost"));
}
