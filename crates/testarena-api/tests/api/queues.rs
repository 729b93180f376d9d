//! Queues, tasks, logs, JUnit and events.

use serde_json::{Value, json};
use testarena_domain::models::NewTestCase;
use testarena_domain::status::Status;
use testarena_domain::store;

use crate::support::{Auth, Server, call, send};

#[test]
fn health_needs_no_auth_and_lists_workers() {
    let s = Server::start();
    store::register_worker(&mut s.conn(), "w1", 2, "0.1.0", 1).unwrap();
    let r = call(&s, "GET", "/api/v1/health", Auth::None, None);
    assert_eq!(r.status, 200);
    let h = r.json();
    assert_eq!(
        (h["status"].as_str(), h["database"].as_str()),
        (Some("ok"), Some("ok"))
    );
    assert_eq!(h["workers"][0]["id"], "w1");
    assert_eq!(h["version"], env!("CARGO_PKG_VERSION"));
}

#[test]
fn a_queue_is_created_listed_and_read() {
    let s = Server::start();
    let r = call(
        &s,
        "POST",
        "/api/v1/queues",
        Auth::Bearer(&s.ann),
        Some(json!({
            "branch": "feature/v1.2-dots", "scenarios": ["scenarios/ok.xml", "scenarios/ok.xml"], "priority": 3
        })),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let q = r.json();
    let id = q["id"].as_str().unwrap().to_owned();
    assert_eq!(
        r.header("location"),
        Some(format!("/api/v1/queues/{id}").as_str())
    );
    assert_eq!(q["status"], "waiting");
    assert_eq!(q["owner"], "ann");
    assert_eq!(
        (q["repo"].as_str(), q["target"].as_str()),
        (Some("firmware"), Some("lx106"))
    );
    assert_eq!(q["position"], 1);
    assert_eq!(q["tasks"][1]["id"], format!("{id}.2"));
    assert!(s.home().join("queues").join(&id).is_dir());
    let commit = q["commit"].as_str().unwrap_or_default();
    assert!(
        commit.len() == 40 && commit.bytes().all(|b| b.is_ascii_hexdigit()),
        "the commit is pinned at submission: {commit:?}"
    );
    for key in ["status_reason", "timeout_s", "started_at", "finished_at"] {
        assert!(q[key].is_null(), "{key}");
    }
    let got = call(
        &s,
        "GET",
        &format!("/api/v1/queues/{id}"),
        Auth::Bearer(&s.bob),
        None,
    );
    assert_eq!(got.status, 200);
    assert_eq!(got.json(), q, "everyone signed in sees every queue");
    let task = call(
        &s,
        "GET",
        &format!("/api/v1/tasks/{id}.1"),
        Auth::Bearer(&s.bob),
        None,
    )
    .json();
    assert_eq!(
        (task["queue_id"].as_str(), task["scenario"].as_str()),
        (Some(id.as_str()), Some("scenarios/ok.xml"))
    );
    // The older systems' paths answer the same.
    assert_eq!(
        call(
            &s,
            "GET",
            &format!("/api/job/{id}"),
            Auth::Bearer(&s.ann),
            None
        )
        .json(),
        q
    );
    assert_eq!(
        call(
            &s,
            "GET",
            &format!("/api/status/{id}"),
            Auth::Bearer(&s.ann),
            None
        )
        .json(),
        q
    );
    assert_eq!(
        call(
            &s,
            "GET",
            &format!("/api/status/{id}.1"),
            Auth::Bearer(&s.ann),
            None
        )
        .json(),
        task
    );
    let list = call(
        &s,
        "GET",
        "/api/v1/queues?owner=ann&status=waiting",
        Auth::Bearer(&s.ann),
        None,
    )
    .json();
    assert_eq!(list["items"][0]["id"], id.as_str());
    assert!(list["next"].is_null());
}

#[test]
fn tasks_keep_their_ids_and_order_and_ids_are_unique() {
    let s = Server::start();
    // A raw body: serde_json's own maps would sort the keys.
    let body = r#"{"branch": "main", "id": "nightly-1", "tasks": {"zz": "scenarios/ok.xml", "aa": "scenarios/ok.xml"}}"#;
    let r = send(
        &s,
        "POST",
        "/api/queue",
        Auth::Bearer(&s.ann),
        Some(body),
        Some("application/json"),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let ids: Vec<_> = r.json()["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["zz", "aa"]);
    send(
        &s,
        "POST",
        "/api/v1/queues",
        Auth::Bearer(&s.ann),
        Some(body),
        Some("application/json"),
    )
    .assert_error(409, "conflict");
    let taken = json!({"branch": "main", "tasks": {"zz": "scenarios/ok.xml"}});
    call(
        &s,
        "POST",
        "/api/submit_job",
        Auth::Bearer(&s.ann),
        Some(taken),
    )
    .assert_error(409, "conflict");
    // The first queue is intact.
    let q = call(
        &s,
        "GET",
        "/api/v1/queues/nightly-1",
        Auth::Bearer(&s.ann),
        None,
    )
    .json();
    assert_eq!(q["tasks"].as_array().unwrap().len(), 2);
}

#[test]
fn the_repository_is_checked_before_anything_is_stored() {
    let s = Server::start();
    let post = |body: Value| {
        call(
            &s,
            "POST",
            "/api/v1/queues",
            Auth::Bearer(&s.ann),
            Some(body),
        )
    };
    let r = post(json!({"branch": "nope", "scenarios": ["scenarios/ok.xml"]}));
    r.assert_error(422, "validation_failed");
    assert_eq!(r.json()["error"]["field"], "branch");
    let r =
        post(json!({"branch": "main", "scenarios": ["scenarios/ok.xml", "scenarios/missing.xml"]}));
    r.assert_error(422, "validation_failed");
    assert_eq!(r.json()["error"]["field"], "scenarios[1]");
    assert!(r.body.contains("scenarios/missing.xml"), "{}", r.body);
    let r = post(json!({"branch": "main", "scenarios": ["scenarios/bad.xml"]}));
    r.assert_error(422, "validation_failed");
    assert!(
        r.body.contains("scenarios/bad.xml:3:"),
        "names the file and line: {}",
        r.body
    );
    let r = post(json!({"branch": "main", "scenarios": ["scenarios/passwd.xml"]}));
    r.assert_error(422, "validation_failed");
    assert!(r.body.contains("symbolic link"), "{}", r.body);
    // A branch pushed after the mirror was first fetched is found.
    crate::support::git(&s.repo, &["branch", "late"]);
    assert_eq!(
        post(json!({"branch": "late", "scenarios": ["scenarios/ok.xml"]})).status,
        201
    );
    let page = store::list_queues(
        &mut s.conn(),
        &store::QueueFilter {
            limit: 50,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(page.items.len(), 1, "only the valid submission was stored");
}

#[test]
fn abort_waiting_running_and_final() {
    let s = Server::start();
    let id = s.submit(&s.ann)["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/queues/{id}/abort");
    call(&s, "POST", &path, Auth::Bearer(&s.bob), None).assert_error(403, "forbidden");
    let r = call(&s, "POST", &path, Auth::Bearer(&s.ann), None);
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(
        (
            r.json()["status"].as_str(),
            r.json()["status_reason"].as_str()
        ),
        (Some("aborted"), Some("aborted by ann"))
    );
    assert_eq!(r.json()["tasks"][0]["status"], "skipped");
    call(&s, "POST", &path, Auth::Bearer(&s.ann), None).assert_error(409, "conflict");

    // A running queue: the abort is a request the worker acts on; an admin may ask.
    let id = s.submit(&s.ann)["id"].as_str().unwrap().to_owned();
    store::claim_next(&mut s.conn(), "w1").unwrap().unwrap();
    let r = call(
        &s,
        "POST",
        &format!("/api/abort/{id}"),
        Auth::Bearer(&s.admin),
        None,
    );
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.json()["status"], "running");
    assert_eq!(
        store::abort_reason(&mut s.conn(), &id).unwrap().as_deref(),
        Some("aborted by root")
    );
}

#[test]
fn delete_rerun_and_junit() {
    let s = Server::start();
    let id = s.submit(&s.ann)["id"].as_str().unwrap().to_owned();
    store::claim_next(&mut s.conn(), "w1").unwrap().unwrap();
    let path = format!("/api/v1/queues/{id}");
    call(&s, "DELETE", &path, Auth::Bearer(&s.ann), None).assert_error(409, "conflict");
    {
        let mut conn = s.conn();
        store::set_task(&mut conn, &format!("{id}.1"), Status::Running, None).unwrap();
        let case = NewTestCase {
            name: "t1".into(),
            status: Status::Failed,
            duration_ms: Some(5),
            message: Some("exit code 1".into()),
        };
        store::record_test_case(&mut conn, &format!("{id}.1"), &case).unwrap();
        store::set_task(
            &mut conn,
            &format!("{id}.1"),
            Status::Failed,
            Some("exit code 1"),
        )
        .unwrap();
        store::finish_queue(&mut conn, &id, Status::Failed, "1 of 1 tasks failed").unwrap();
    }
    // JUnit from the database, since the worker wrote no file.
    let r = call(
        &s,
        "GET",
        &format!("{path}/junit.xml"),
        Auth::Bearer(&s.bob),
        None,
    );
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("application/xml")
    );
    assert!(
        r.body.contains(r#"<failure message="exit code 1"/>"#),
        "{}",
        r.body
    );
    // The worker's file wins once it exists.
    s.append_log(&id, "junit.xml", b"<testsuites/>");
    assert_eq!(
        call(
            &s,
            "GET",
            &format!("{path}/junit.xml"),
            Auth::Bearer(&s.bob),
            None
        )
        .body,
        "<testsuites/>"
    );

    let r = call(
        &s,
        "POST",
        &format!("{path}/rerun"),
        Auth::Bearer(&s.admin),
        None,
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let again = r.json();
    assert_ne!(again["id"], id.as_str());
    assert_eq!(
        (again["branch"].as_str(), again["owner"].as_str()),
        (Some("main"), Some("root"))
    );
    assert_eq!(again["tasks"][0]["scenario"], "scenarios/ok.xml");

    call(&s, "DELETE", &path, Auth::Bearer(&s.bob), None).assert_error(403, "forbidden");
    assert_eq!(
        call(&s, "DELETE", &path, Auth::Bearer(&s.ann), None).status,
        204
    );
    assert!(
        !s.home().join("queues").join(&id).exists(),
        "files removed with the rows"
    );
    call(&s, "GET", &path, Auth::Bearer(&s.ann), None).assert_error(404, "not_found");
    call(
        &s,
        "DELETE",
        &format!("/api/delete/{id}"),
        Auth::Bearer(&s.ann),
        None,
    )
    .assert_error(404, "not_found");
}

#[test]
fn logs_are_listed_read_in_ranges_and_confined() {
    let s = Server::start();
    let id = s.submit(&s.ann)["id"].as_str().unwrap().to_owned();
    s.append_log(&id, "queue.log", b"claimed\nbuilt\n");
    s.append_log(&id, "tasks/t/unit.log", b"ok \xff\xfe bytes\n");
    // A link out of the folder (the database has no links: nothing to see).
    let dir = s.home().join("queues").join(&id);
    std::fs::write(s.home().join("secret.txt"), "top secret").unwrap();
    std::os::unix::fs::symlink(s.home().join("secret.txt"), dir.join("link.log")).unwrap();
    let list = call(
        &s,
        "GET",
        &format!("/api/v1/queues/{id}/logs"),
        Auth::Bearer(&s.ann),
        None,
    )
    .json();
    let paths: Vec<_> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert!(
        paths.contains(&"queue.log") && paths.contains(&"tasks/t/unit.log"),
        "{paths:?}"
    );
    let r = call(
        &s,
        "GET",
        &format!("/api/v1/queues/{id}/logs/queue.log?offset=8&limit=3"),
        Auth::Bearer(&s.ann),
        None,
    );
    assert_eq!((r.status, r.body.as_str()), (200, "bui"));
    assert_eq!(r.header("x-log-size"), Some("14"));
    assert_eq!(r.header("x-log-complete"), Some("false"));
    let r = call(
        &s,
        "GET",
        &format!("/api/v1/queues/{id}/logs/tasks/t/unit.log"),
        Auth::Bearer(&s.ann),
        None,
    );
    assert!(r.body.starts_with("ok "), "{}", r.body);
    for bad in [
        "../queue.log",
        "..%2f..%2fsecret.txt",
        "link.log",
        "tasks/../../secret.txt",
        "%2e%2e/secret.txt",
        "missing.log",
    ] {
        let r = call(
            &s,
            "GET",
            &format!("/api/v1/queues/{id}/logs/{bad}"),
            Auth::Bearer(&s.ann),
            None,
        );
        assert!(
            r.status == 404 || r.status == 400,
            "{bad}: {} {}",
            r.status,
            r.body
        );
        assert!(!r.body.contains("top secret"), "{bad}");
    }
    // Final: the logs say they are complete.
    store::request_abort(
        &mut s.conn(),
        &id,
        "x",
        store::Actor {
            name: "admin",
            admin: true,
        },
    )
    .unwrap();
    let r = call(
        &s,
        "GET",
        &format!("/api/v1/queues/{id}/logs/queue.log"),
        Auth::Bearer(&s.ann),
        None,
    );
    assert_eq!(r.header("x-log-complete"), Some("true"));
}

#[test]
fn events_follow_status_and_log_lines_until_the_end() {
    let s = Server::start();
    let id = s.submit(&s.ann)["id"].as_str().unwrap().to_owned();
    let events = crate::support::events(&s, &format!("/api/v1/queues/{id}/events"), &s.ann);
    let next = |want: &str| events.next(want);
    assert_eq!(next("status")["status"], "waiting");
    store::claim_next(&mut s.conn(), "w1").unwrap();
    assert_eq!(next("status")["status"], "running");
    s.append_log(&id, "queue.log", b"line one\nline t");
    let chunk = next("log");
    assert_eq!(
        (
            chunk["path"].as_str(),
            chunk["offset"].as_u64(),
            chunk["text"].as_str()
        ),
        (Some("queue.log"), Some(0), Some("line one\n"))
    );
    s.append_log(&id, "queue.log", b"wo\n");
    assert_eq!(next("log")["text"], "line two\n");
    s.end_queue(&id, Status::Passed);
    assert_eq!(next("end")["status"], "passed");
}

#[test]
fn forty_concurrent_submissions_are_all_stored() {
    let s = Server::start();
    let ids: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..40)
            .map(|_| scope.spawn(|| s.submit(&s.bob)["id"].as_str().unwrap().to_owned()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let unique: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), 40);
    let page = store::list_queues(
        &mut s.conn(),
        &store::QueueFilter {
            limit: 200,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(page.items.len(), 40);
    for id in &ids {
        assert_eq!(
            store::queue_detail(&mut s.conn(), id)
                .unwrap()
                .unwrap()
                .tasks
                .len(),
            1
        );
    }
}

#[test]
fn list_pages_and_filters() {
    let s = Server::start();
    for _ in 0..5 {
        s.submit(&s.ann);
    }
    let mut seen = Vec::new();
    let mut path = "/api/v1/queues?limit=2".to_owned();
    loop {
        let page = call(&s, "GET", &path, Auth::Bearer(&s.bob), None).json();
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|q| q["id"].as_str().unwrap().to_owned()),
        );
        match page["next"].as_str() {
            Some(next) => path = format!("/api/v1/queues?limit=2&before={next}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5);
    assert_eq!(
        seen.iter().collect::<std::collections::HashSet<_>>().len(),
        5
    );
    let none = call(
        &s,
        "GET",
        "/api/v1/queues?owner=bob",
        Auth::Bearer(&s.bob),
        None,
    )
    .json();
    assert!(none["items"].as_array().unwrap().is_empty());
    let m = send(&s, "GET", "/metrics", Auth::Bearer(&s.ann), None, None);
    assert!(
        m.body.contains("testarena_queues{status=\"waiting\"} 5"),
        "{}",
        m.body
    );
}
