//! History over HTTP: scenario subsets at submit, rerun options, a test's
//! runs, the tests list, the case facts in the queue JSON and compare.

use serde_json::{Value, json};
use testarena_domain::models::NewTestCase;
use testarena_domain::status::Status;
use testarena_domain::store;

use crate::support::{Auth, Server, call, git};

const OK: &str = "scenarios/ok.xml";

fn submit(s: &Server, body: Value) -> Value {
    let r = call(
        s,
        "POST",
        "/api/v1/queues",
        Auth::Bearer(&s.ann),
        Some(body),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()
}

/// Runs a waiting queue to its end in the store: `t1` gets `status`.
fn finish(s: &Server, id: &str, status: Status, ms: u64) {
    let mut conn = s.conn();
    let claimed = store::claim_next(&mut conn, "w1").unwrap().unwrap();
    assert_eq!(claimed.id, id);
    let task = format!("{id}.1");
    store::set_task(&mut conn, &task, Status::Running, None).unwrap();
    let case = NewTestCase {
        name: "t1".into(),
        status,
        duration_ms: Some(ms),
        message: (status != Status::Passed).then(|| "exit code 1".into()),
    };
    store::record_test_case(&mut conn, &task, &case).unwrap();
    store::set_task(&mut conn, &task, status, None).unwrap();
    store::finish_queue(&mut conn, id, status, "").unwrap();
}

fn queue_id(q: &Value) -> String {
    q["id"].as_str().unwrap().to_owned()
}

#[test]
fn a_scenario_subset_is_checked_against_the_scenario() {
    let s = Server::start();
    let q = submit(
        &s,
        json!({"branch": "main", "scenarios": [{"path": OK, "only": ["t1"]}, OK]}),
    );
    assert_eq!(q["tasks"][0]["only"], json!(["t1"]));
    assert!(q["tasks"][1].get("only").is_none(), "{}", q["tasks"][1]);

    let post = |body: Value| {
        call(
            &s,
            "POST",
            "/api/v1/queues",
            Auth::Bearer(&s.ann),
            Some(body),
        )
    };
    let r =
        post(json!({"branch": "main", "scenarios": [OK, {"path": OK, "only": ["t1", "nope"]}]}));
    r.assert_error(422, "validation_failed");
    assert_eq!(r.json()["error"]["field"], "scenarios[1].only");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"nope\""),
        "{}",
        r.body
    );
    let r = post(json!({"branch": "main", "scenarios": [{"path": OK, "only": []}]}));
    r.assert_error(422, "validation_failed");
    assert_eq!(r.json()["error"]["field"], "scenarios[0].only");
    let r = post(json!({"branch": "main", "scenarios": [{"path": OK, "only": ["t1", "t1"]}]}));
    r.assert_error(422, "validation_failed");
    post(json!({"branch": "main", "scenarios": [{"path": OK, "only": "t1"}]}))
        .assert_error(400, "bad_request");
    post(json!({"branch": "main", "scenarios": [{"path": OK, "bogus": 1}]}))
        .assert_error(400, "bad_request");
}

#[test]
fn rerun_takes_options_and_answers_a_list_for_count() {
    let s = Server::start();
    let first = submit(&s, json!({"branch": "main", "scenarios": [OK, OK]}));
    let id = queue_id(&first);
    {
        // Task 1 fails t1, task 2 passes.
        let mut conn = s.conn();
        store::claim_next(&mut conn, "w1").unwrap().unwrap();
        for (task, status) in [(1, Status::Failed), (2, Status::Passed)] {
            let task = format!("{id}.{task}");
            store::set_task(&mut conn, &task, Status::Running, None).unwrap();
            let case = NewTestCase {
                name: "t1".into(),
                status,
                duration_ms: Some(5),
                message: None,
            };
            store::record_test_case(&mut conn, &task, &case).unwrap();
            store::set_task(&mut conn, &task, status, None).unwrap();
        }
        store::finish_queue(&mut conn, &id, Status::Failed, "1 of 2 tasks failed").unwrap();
    }
    let path = format!("/api/v1/queues/{id}/rerun");
    let rerun = |body: Option<Value>| call(&s, "POST", &path, Auth::Bearer(&s.ann), body);

    // No body: one queue, as before rerun took options.
    let one = rerun(None);
    assert_eq!(one.status, 201, "{}", one.body);
    assert_eq!(one.json()["tasks"].as_array().unwrap().len(), 2);
    assert_eq!(one.json()["commit"], first["commit"]);

    let three = rerun(Some(json!({"count": 3})));
    assert_eq!(three.status, 201, "{}", three.body);
    let list = three.json();
    let list = list.as_array().expect("a list for count");
    assert_eq!(list.len(), 3);
    let ids: std::collections::HashSet<&str> =
        list.iter().map(|q| q["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 3, "three queues");
    for q in list {
        assert_eq!(q["commit"], first["commit"], "at the same commit");
        assert_eq!(q["status"], "waiting");
    }

    let failed = rerun(Some(json!({"failed_only": true})));
    assert_eq!(failed.status, 201, "{}", failed.body);
    let tasks = failed.json()["tasks"].clone();
    assert_eq!(
        tasks.as_array().unwrap().len(),
        1,
        "only the task that failed"
    );
    assert_eq!(tasks[0]["only"], json!(["t1"]));

    // The branch moves on: same_commit false runs its tip.
    std::fs::write(s.repo.join("README"), "moved\n").unwrap();
    git(&s.repo, &["add", "-A"]);
    git(&s.repo, &["commit", "-q", "-m", "move"]);
    let tip = rerun(Some(json!({"same_commit": false})));
    assert_eq!(tip.status, 201, "{}", tip.body);
    assert_ne!(tip.json()["commit"], first["commit"]);
    let pinned = rerun(Some(json!({})));
    assert_eq!(pinned.json()["commit"], first["commit"]);

    rerun(Some(json!({"count": 0}))).assert_error(422, "validation_failed");
    rerun(Some(json!({"count": 21}))).assert_error(422, "validation_failed");
    rerun(Some(json!({"bogus": true}))).assert_error(400, "bad_request");
    let r = call(
        &s,
        "POST",
        &path,
        Auth::Bearer(&s.bob),
        Some(json!({"count": 2})),
    );
    r.assert_error(403, "forbidden");

    // A queue that passed has nothing to rerun with failed_only.
    let mut conn = s.conn();
    while let Some(q) = store::claim_next(&mut conn, "w1").unwrap() {
        store::finish_queue(&mut conn, &q.id, Status::Aborted, "cleared").unwrap();
    }
    drop(conn);
    let ok = submit(&s, json!({"branch": "main", "scenarios": [OK]}));
    finish(&s, &queue_id(&ok), Status::Passed, 5);
    let path = format!("/api/v1/queues/{}/rerun", queue_id(&ok));
    let r = call(
        &s,
        "POST",
        &path,
        Auth::Bearer(&s.ann),
        Some(json!({"failed_only": true})),
    );
    r.assert_error(422, "validation_failed");
    assert_eq!(r.json()["error"]["field"], "failed_only");
}

#[test]
fn a_tests_runs_the_tests_list_and_the_case_facts() {
    let s = Server::start();
    let body = json!({"branch": "main", "scenarios": [OK]});
    let q1 = queue_id(&submit(&s, body.clone()));
    finish(&s, &q1, Status::Passed, 100);
    let q2 = queue_id(&submit(&s, body.clone()));
    finish(&s, &q2, Status::Passed, 300);
    let q3 = queue_id(&submit(&s, body));
    finish(&s, &q3, Status::Failed, 50);

    // The queue JSON: a failure after passes at one commit.
    let q = call(
        &s,
        "GET",
        &format!("/api/v1/queues/{q3}"),
        Auth::Bearer(&s.bob),
        None,
    )
    .json();
    let t1 = &q["tasks"][0]["tests"][0];
    assert_eq!(t1["new_failure"], true, "{t1}");
    assert_eq!(t1["known_flaky"], true, "passed and failed at one commit");
    assert_eq!(t1["baseline_ms"], 200);
    let q = call(
        &s,
        "GET",
        &format!("/api/v1/queues/{q1}"),
        Auth::Bearer(&s.bob),
        None,
    )
    .json();
    let t1 = &q["tasks"][0]["tests"][0];
    assert_eq!(
        (t1["new_failure"].clone(), t1["baseline_ms"].clone()),
        (json!(false), Value::Null)
    );

    let history = |query: &str| {
        call(
            &s,
            "GET",
            &format!("/api/v1/tests/history?{query}"),
            Auth::Bearer(&s.bob),
            None,
        )
    };
    let r = history("repo=firmware&scenario=scenarios/ok.xml&name=t1&limit=2");
    assert_eq!(r.status, 200, "{}", r.body);
    let page = r.json();
    assert_eq!(page["items"][0]["queue_id"], q3.as_str());
    assert_eq!(page["items"][0]["status"], "failed");
    assert_eq!(page["items"][0]["ran_on"], "qemu");
    assert_eq!(page["items"][1]["queue_id"], q2.as_str());
    let next = page["next"].as_str().unwrap();
    let rest = history(&format!(
        "repo=firmware&scenario=scenarios/ok.xml&name=t1&limit=2&before={next}"
    ))
    .json();
    assert_eq!(rest["items"][0]["queue_id"], q1.as_str());
    assert_eq!(rest["next"], Value::Null);
    history("repo=firmware&scenario=scenarios/ok.xml").assert_error(422, "validation_failed");
    history("repo=firmware&scenario=s&name=t1&limit=0").assert_error(422, "validation_failed");
    history("repo=firmware&scenario=s&name=t1&before=x").assert_error(422, "validation_failed");
    history("repo=firmware&scenario=s&name=t1&bogus=1").assert_error(400, "bad_request");

    let tests = |query: &str| {
        call(
            &s,
            "GET",
            &format!("/api/v1/tests?{query}"),
            Auth::Bearer(&s.bob),
            None,
        )
    };
    let r = tests("repo=firmware&sort=failures");
    assert_eq!(r.status, 200, "{}", r.body);
    let row = &r.json()["items"][0];
    assert_eq!(
        (
            row["name"].as_str(),
            row["runs"].as_i64(),
            row["failed"].as_i64()
        ),
        (Some("t1"), Some(3), Some(1))
    );
    assert_eq!(row["flaky"], true);
    assert_eq!(row["last_status"], "failed");
    assert_eq!(row["last_failure"]["queue_id"], q3.as_str());
    assert_eq!(row["median_ms"], 200);
    assert_eq!(tests("since=2999-01-01").json()["items"], json!([]));
    assert_eq!(tests("branch=other").json()["items"], json!([]));
    tests("sort=bogus").assert_error(422, "validation_failed");
    tests("since=yesterday").assert_error(422, "validation_failed");
    tests("limit=201").assert_error(422, "validation_failed");
    call(&s, "GET", "/api/v1/tests", Auth::None, None).assert_error(401, "unauthorized");
}

#[test]
fn compare_lists_what_changed_since_the_base() {
    let s = Server::start();
    let body = json!({"branch": "main", "scenarios": [OK]});
    let q1 = queue_id(&submit(&s, body.clone()));
    finish(&s, &q1, Status::Passed, 10);
    let q2 = queue_id(&submit(&s, body.clone()));
    finish(&s, &q2, Status::Failed, 10);
    let q3 = queue_id(&submit(&s, body));
    finish(&s, &q3, Status::Passed, 10);

    let compare = |id: &str, with: &str| {
        call(
            &s,
            "GET",
            &format!("/api/v1/queues/{id}/compare{with}"),
            Auth::Bearer(&s.bob),
            None,
        )
    };
    let r = compare(&q2, "");
    assert_eq!(r.status, 200, "{}", r.body);
    let c = r.json();
    assert_eq!(c["base"], q1.as_str());
    assert_eq!(c["new_failures"], json!([{"scenario": OK, "name": "t1"}]));
    assert_eq!(c["fixed"], json!([]));
    let c = compare(&q3, "").json();
    assert_eq!(c["base"], q2.as_str());
    assert_eq!(c["fixed"], json!([{"scenario": OK, "name": "t1"}]));
    let c = compare(&q3, &format!("?with={q1}")).json();
    assert_eq!(c["base"], q1.as_str());
    assert_eq!(c["fixed"], json!([]));
    let c = compare(&q1, "").json();
    assert_eq!(c["base"], Value::Null);
    assert_eq!(c["added"], json!([{"scenario": OK, "name": "t1"}]));

    compare("nope", "").assert_error(404, "not_found");
    compare(&q3, "?with=nope").assert_error(422, "validation_failed");
    compare(&q3, "?bogus=1").assert_error(400, "bad_request");
}
