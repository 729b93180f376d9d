//! Boards over the API (DESIGN section 10): a board requirement no board
//! could meet is 422 `board`, the board list and one board, an admin's
//! PATCH and health-check request, the board lines of `/metrics`.

use serde_json::json;
use testarena_domain::store::{self, boards::BoardRegistration};

use crate::support::{Auth, Server, call};

fn register(s: &Server, id: &str, tags: &[&str], health: bool) {
    let reg = BoardRegistration {
        id: id.into(),
        target: "lx106".into(),
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        serial: format!("/dev/serial/by-id/usb-{id}"),
        baud: 115_200,
        present: true,
        health: health.then(|| {
            (
                "firmware".to_owned(),
                "main".to_owned(),
                "scenarios/ok.xml".to_owned(),
                24,
            )
        }),
    };
    let mut c = s.conn();
    store::register_worker(&mut c, "w1", 1, "0.1.0", 1).unwrap();
    store::boards::register_boards(
        &mut c,
        "w1",
        &[reg],
        store::now() - chrono::Duration::seconds(60),
    )
    .unwrap();
}

#[test]
fn a_board_requirement_no_board_could_meet_is_422_board() {
    let s = Server::start();
    register(&s, "devkit-01", &["wifi"], false);
    let submit = |extra: serde_json::Value| {
        let mut body = json!({"branch": "main", "scenarios": ["scenarios/ok.xml"]});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        call(
            &s,
            "POST",
            "/api/v1/queues",
            Auth::Bearer(&s.ann),
            Some(body),
        )
    };
    for (extra, field) in [
        (json!({"board_tags": ["psram"]}), "board"),
        (json!({"board": "devkit-99"}), "board"),
        (json!({"board": "../x"}), "board"),
        (
            json!({"board": "devkit-01", "board_tags": ["wifi", "psram"]}),
            "board",
        ),
        (json!({"board_tags": ["bad tag"]}), "board_tags[0]"),
    ] {
        let r = submit(extra.clone());
        r.assert_error(422, "validation_failed");
        assert_eq!(r.json()["error"]["field"], field, "{extra}: {}", r.body);
    }
    let r = submit(json!({"board": "devkit-01", "board_tags": ["wifi"]}));
    assert_eq!(r.status, 201, "{}", r.body);
    let q = r.json();
    assert_eq!(
        (q["board"].as_str(), q["ran_on"].as_str()),
        (Some("devkit-01"), None)
    );
    assert_eq!(q["board_tags"], json!(["wifi"]));
    // Tags alone mean any board; the queue says what it waits for.
    let r = submit(json!({"board_tags": ["wifi"]}));
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["board"], "any");
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let got = call(
        &s,
        "GET",
        &format!("/api/v1/queues/{id}"),
        Auth::Bearer(&s.ann),
        None,
    )
    .json();
    assert_eq!(
        got["waiting_for"], "a board with tags wifi: 1 idle",
        "{got:#}"
    );
    // A QEMU queue is not claimed as a board's, nor a board's as QEMU's.
    let mut c = s.conn();
    assert!(store::claim_next(&mut c, "w2").unwrap().is_none());
    let claimed = store::claim_with_boards(&mut c, "w1", &["devkit-01".into()])
        .unwrap()
        .unwrap();
    assert_eq!(claimed.ran_on.as_deref(), Some("devkit-01"));
    // The board is leased: a second claim finds none free.
    assert!(
        store::claim_with_boards(&mut c, "w1", &["devkit-01".into()])
            .unwrap()
            .is_none()
    );
    let b = call(
        &s,
        "GET",
        "/api/v1/boards/devkit-01",
        Auth::Bearer(&s.ann),
        None,
    )
    .json();
    assert_eq!(
        (b["status"].as_str(), b["queue"].as_str()),
        (Some("busy"), Some(claimed.id.as_str()))
    );
    store::finish_queue(
        &mut c,
        &claimed.id,
        testarena_domain::status::Status::Passed,
        "",
    )
    .unwrap();
    let b = call(
        &s,
        "GET",
        "/api/v1/boards/devkit-01",
        Auth::Bearer(&s.ann),
        None,
    )
    .json();
    assert_eq!(b["status"], "idle", "released with the end: {b:#}");
    assert_eq!(b["queues"][0]["id"], claimed.id.as_str());
}

#[test]
fn boards_are_listed_changed_by_admins_and_health_checked() {
    let s = Server::start();
    register(&s, "b1", &["psram", "wifi"], true);
    register(&s, "b2", &[], false);
    let list = call(&s, "GET", "/api/v1/boards", Auth::Bearer(&s.ann), None);
    assert_eq!(list.status, 200);
    let l = list.json();
    assert_eq!(l.as_array().unwrap().len(), 2);
    assert_eq!(l[0]["id"], "b1");
    assert_eq!(l[0]["tags"], json!(["psram", "wifi"]));
    assert_eq!(
        (l[0]["health"].as_str(), l[0]["worker"].as_str()),
        (Some("unknown"), Some("w1"))
    );
    call(&s, "GET", "/api/v1/boards/nope", Auth::Bearer(&s.ann), None)
        .assert_error(404, "not_found");
    // PATCH and POST health are for admins.
    let patch = json!({"maintenance": true, "note": "cable loose"});
    call(
        &s,
        "PATCH",
        "/api/v1/boards/b1",
        Auth::Bearer(&s.ann),
        Some(patch.clone()),
    )
    .assert_error(403, "forbidden");
    let r = call(
        &s,
        "PATCH",
        "/api/v1/boards/b1",
        Auth::Bearer(&s.admin),
        Some(patch),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (r.json()["status"].as_str(), r.json()["note"].as_str()),
        (Some("maintenance"), Some("cable loose"))
    );
    call(
        &s,
        "PATCH",
        "/api/v1/boards/b1",
        Auth::Bearer(&s.admin),
        Some(json!({"bogus": 1})),
    )
    .assert_error(400, "bad_request");
    call(
        &s,
        "PATCH",
        "/api/v1/boards/b1",
        Auth::Bearer(&s.admin),
        Some(json!({"note": "x".repeat(1001)})),
    )
    .assert_error(422, "validation_failed");
    call(
        &s,
        "POST",
        "/api/v1/boards/b1/health",
        Auth::Bearer(&s.ann),
        None,
    )
    .assert_error(403, "forbidden");
    let r = call(
        &s,
        "POST",
        "/api/v1/boards/b1/health",
        Auth::Bearer(&s.admin),
        None,
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let q = r.json();
    assert_eq!(
        (q["owner"].as_str(), q["board"].as_str()),
        (Some("testarena"), Some("b1"))
    );
    assert_eq!(q["priority"], 1000);
    // Asked again while it waits: the same queue.
    let again = call(
        &s,
        "POST",
        "/api/v1/boards/b1/health",
        Auth::Bearer(&s.admin),
        None,
    )
    .json();
    assert_eq!(again["id"], q["id"]);
    // No health check configured: 409.
    call(
        &s,
        "POST",
        "/api/v1/boards/b2/health",
        Auth::Bearer(&s.admin),
        None,
    )
    .assert_error(409, "conflict");
    // A health check runs on a board in maintenance; its failure makes it bad.
    let mut c = s.conn();
    let hq = store::claim_with_boards(&mut c, "w1", &["b1".into(), "b2".into()])
        .unwrap()
        .unwrap();
    assert_eq!(
        (hq.id.as_str(), hq.ran_on.as_deref()),
        (q["id"].as_str().unwrap(), Some("b1"))
    );
    store::finish_queue(
        &mut c,
        &hq.id,
        testarena_domain::status::Status::Failed,
        "1 of 1 tasks failed",
    )
    .unwrap();
    let b = call(&s, "GET", "/api/v1/boards/b1", Auth::Bearer(&s.ann), None).json();
    assert_eq!(
        (b["health"].as_str(), b["last_health_queue"].as_str()),
        (Some("bad"), Some(hq.id.as_str()))
    );
    let m = call(&s, "GET", "/metrics", Auth::Bearer(&s.ann), None).body;
    assert!(m.contains("testarena_boards{status=\"idle\"} 1"), "{m}");
    assert!(m.contains("testarena_board_faults_total 0"), "{m}");
}

#[test]
fn a_board_another_live_worker_holds_is_refused_naming_both() {
    let s = Server::start();
    register(&s, "shared", &[], false);
    let mut c = s.conn();
    store::register_worker(&mut c, "w2", 1, "0.1.0", 2).unwrap();
    let reg = BoardRegistration {
        id: "shared".into(),
        target: "lx106".into(),
        tags: Vec::new(),
        serial: "/dev/ttyUSB9".into(),
        baud: 115_200,
        present: true,
        health: None,
    };
    let live = store::now() - chrono::Duration::seconds(60);
    let err = store::boards::register_boards(&mut c, "w2", std::slice::from_ref(&reg), live)
        .unwrap_err()
        .to_string();
    assert!(err.contains("\"w1\"") && err.contains("\"w2\""), "{err}");
    // Once w1 is silent past lost_after_s, w2 may take the board over.
    let later = store::now() + chrono::Duration::seconds(1);
    let rows = store::boards::register_boards(&mut c, "w2", &[reg], later).unwrap();
    assert_eq!(rows[0].worker_id, "w2");
}
