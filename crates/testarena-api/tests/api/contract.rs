//! Pinned commits, `GET /api/v1/config`, `HEAD`, the bundled dashboard,
//! `next_offset` in `log` events, and the last admin under concurrent
//! requests.

use serde_json::{Value, json};
use testarena_domain::status::Status;
use testarena_domain::store;

use crate::support::{Auth, Server, call, git, send};

fn submit(s: &Server, body: Value) -> crate::support::Resp {
    call(
        s,
        "POST",
        "/api/v1/queues",
        Auth::Bearer(&s.ann),
        Some(body),
    )
}

fn head_of(s: &Server, branch: &str) -> String {
    let out = std::process::Command::new("git")
        .args(["rev-parse", branch])
        .current_dir(&s.repo)
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Adds a commit to the checked-out branch that changes `scenarios/ok.xml`.
fn push_commit(s: &Server, message: &str) -> String {
    let path = s.repo.join("scenarios/ok.xml");
    let mut xml = std::fs::read_to_string(&path).unwrap();
    xml.push_str(&format!("<!-- {message} -->\n"));
    std::fs::write(&path, xml).unwrap();
    git(&s.repo, &["commit", "-q", "-am", message]);
    head_of(s, "HEAD")
}

#[test]
fn the_commit_is_pinned_at_submission_and_kept_by_rerun() {
    let s = Server::start();
    let first = head_of(&s, "main");
    let q = submit(
        &s,
        json!({"branch": "main", "scenarios": ["scenarios/ok.xml"]}),
    )
    .json();
    assert_eq!(q["commit"], first.as_str(), "the tip at submission");
    let newer = push_commit(&s, "second");
    assert_ne!(newer, first);

    // The branch moved; the stored queue did not.
    let id = q["id"].as_str().unwrap();
    let got = call(
        &s,
        "GET",
        &format!("/api/v1/queues/{id}"),
        Auth::Bearer(&s.ann),
        None,
    );
    assert_eq!(got.json()["commit"], first.as_str());
    let row = store::get_queue(&mut s.conn(), id).unwrap().unwrap();
    assert_eq!(row.commit_sha.as_deref(), Some(first.as_str()));

    // A new submission takes the new tip; a rerun keeps the old commit.
    let tip = submit(
        &s,
        json!({"branch": "main", "scenarios": ["scenarios/ok.xml"]}),
    )
    .json();
    assert_eq!(tip["commit"], newer.as_str());
    let rerun = call(
        &s,
        "POST",
        &format!("/api/v1/queues/{id}/rerun"),
        Auth::Bearer(&s.ann),
        None,
    );
    assert_eq!(rerun.status, 201, "{}", rerun.body);
    assert_eq!(rerun.json()["commit"], first.as_str());
}

#[test]
fn a_submission_may_name_a_commit_of_the_branch() {
    let s = Server::start();
    let old = head_of(&s, "main");
    push_commit(&s, "later");
    let scenarios = json!(["scenarios/ok.xml"]);
    for rev in [old.clone(), old[..7].to_owned(), old.to_uppercase()] {
        let r = submit(
            &s,
            json!({"branch": "main", "commit": rev, "scenarios": scenarios}),
        );
        assert_eq!(r.status, 201, "{rev}: {}", r.body);
        assert_eq!(r.json()["commit"], old.as_str(), "{rev}");
    }

    // A commit only on another branch is not on this one's history.
    git(&s.repo, &["checkout", "-q", "-b", "side"]);
    let side = push_commit(&s, "side only");
    git(&s.repo, &["checkout", "-q", "main"]);
    for rev in [
        "0000000".to_owned(),
        "0".repeat(40),
        side.clone(),
        "abc".into(),
        "not-hex!".into(),
        "a".repeat(41),
    ] {
        let r = submit(
            &s,
            json!({"branch": "main", "commit": rev, "scenarios": scenarios}),
        );
        r.assert_error(422, "validation_failed");
        assert_eq!(r.json()["error"]["field"], "commit", "{rev}");
    }
    // The side branch itself may run it.
    let r = submit(
        &s,
        json!({"branch": "side", "commit": &side[..10], "scenarios": scenarios}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["commit"], side.as_str());
}

#[test]
fn config_lists_repositories_and_targets_only() {
    let s = Server::start();
    let r = call(&s, "GET", "/api/v1/config", Auth::Bearer(&s.bob), None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json(),
        json!({
            "repos": [{"name": "firmware"}],
            "targets": [{"name": "esp32"}, {"name": "lx106"}],
            "default_target": "lx106"
        })
    );
    assert!(!r.body.contains(s.repo.to_str().unwrap()), "no URL shown");
    call(&s, "GET", "/api/v1/config", Auth::None, None).assert_error(401, "unauthorized");
}

#[test]
fn head_answers_every_get_route_without_a_body() {
    let s = Server::start();
    let id = s.submit(&s.ann)["id"].as_str().unwrap().to_owned();
    s.append_log(&id, "queue.log", b"hello\n");
    for path in [
        "/api/v1/health".to_owned(),
        "/api/v1/openapi.json".into(),
        "/api/v1/config".into(),
        "/api/v1/me".into(),
        "/api/v1/queues".into(),
        format!("/api/v1/queues/{id}"),
        format!("/api/v1/queues/{id}/logs"),
        format!("/api/v1/queues/{id}/logs/queue.log"),
        format!("/api/v1/queues/{id}/junit.xml"),
        format!("/api/v1/tasks/{id}.1"),
        "/api/v1/tokens".into(),
        "/metrics".into(),
        "/".into(),
        "/js/app.js".into(),
    ] {
        let get = send(&s, "GET", &path, Auth::Bearer(&s.admin), None, None);
        let head = send(&s, "HEAD", &path, Auth::Bearer(&s.admin), None, None);
        assert_eq!(get.status, 200, "GET {path}: {}", get.body);
        assert_eq!(head.status, 200, "HEAD {path}");
        assert!(head.body.is_empty(), "HEAD {path} sent a body");
        assert_eq!(
            head.header("content-type"),
            get.header("content-type"),
            "{path}"
        );
    }
    let r = send(
        &s,
        "HEAD",
        "/api/v1/queues/nope",
        Auth::Bearer(&s.ann),
        None,
        None,
    );
    assert_eq!(r.status, 404);
    let r = send(&s, "HEAD", "/api/v1/queues", Auth::None, None, None);
    assert_eq!(r.status, 401);
    // HEAD is no way around a route that has no GET.
    let r = send(
        &s,
        "HEAD",
        &format!("/api/v1/queues/{id}/abort"),
        Auth::Bearer(&s.ann),
        None,
        None,
    );
    assert_eq!(r.status, 405);
    assert_eq!(
        store::get_queue(&mut s.conn(), &id)
            .unwrap()
            .unwrap()
            .status(),
        Status::Waiting
    );
}

#[test]
fn the_dashboard_is_served_from_the_binary_without_static_dir() {
    let s = Server::start();
    assert!(s.state.config.server.static_dir.is_none());
    let index = send(&s, "GET", "/", Auth::None, None, None);
    assert_eq!(index.status, 200);
    assert_eq!(
        index.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let on_disk = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../static/index.html"),
    )
    .unwrap();
    assert_eq!(index.body, on_disk);
    let css = send(&s, "GET", "/css/app.css", Auth::None, None, None);
    assert_eq!(css.status, 200);
    assert!(css.header("content-type").unwrap().starts_with("text/css"));
    // Revalidation: the ETag answers 304.
    let etag = css.header("etag").unwrap().to_owned();
    let url = s.url("/css/app.css");
    let res = crate::support::agent()
        .get(&url)
        .header("If-None-Match", &etag)
        .call()
        .unwrap();
    assert_eq!(res.status().as_u16(), 304);
    send(&s, "GET", "/nope.js", Auth::None, None, None).assert_error(404, "not_found");
    send(&s, "GET", "/../Cargo.toml", Auth::None, None, None).assert_error(404, "not_found");
    send(
        &s,
        "POST",
        "/index.html",
        Auth::None,
        Some("x"),
        Some("text/plain"),
    )
    .assert_error(405, "bad_request");
}

#[test]
fn static_dir_overrides_the_bundled_dashboard() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), "<p>work in progress</p>").unwrap();
    let path = dir.path().to_owned();
    let s = Server::start_with(move |c| c.server.static_dir = Some(path));
    let index = send(&s, "GET", "/", Auth::None, None, None);
    assert_eq!(index.body, "<p>work in progress</p>");
    send(&s, "GET", "/js/app.js", Auth::None, None, None).assert_error(404, "not_found");
}

/// A log that is not UTF-8: `next_offset` is the byte position after the
/// chunk, whatever the lossy text's length, and resuming there loses and
/// repeats nothing.
#[test]
fn log_events_carry_the_byte_offset_to_resume_from() {
    let s = Server::start();
    let id = s.submit(&s.ann)["id"].as_str().unwrap().to_owned();
    store::claim_next(&mut s.conn(), "w1").unwrap().unwrap();
    // An invalid byte and a cut multi-byte character before each newline.
    let first: &[u8] = b"caf\xc3\xa9 \xff\xfe one\n";
    let second: &[u8] = b"two \xe2\x82\n";
    s.append_log(&id, "queue.log", first);
    let events = crate::support::events(&s, &format!("/api/v1/queues/{id}/events"), &s.ann);
    let chunk = events.next("log");
    assert_eq!(chunk["offset"], 0);
    assert_eq!(chunk["next_offset"], first.len());
    assert_ne!(
        chunk["text"].as_str().unwrap().len(),
        first.len(),
        "the lossy text is longer than the bytes"
    );
    s.append_log(&id, "queue.log", second);
    let chunk = events.next("log");
    assert_eq!(chunk["offset"], first.len());
    assert_eq!(chunk["next_offset"], first.len() + second.len());
    assert_eq!(chunk["text"], "two \u{fffd}\n");

    // Resuming at next_offset starts exactly at the second line.
    let resumed = crate::support::events(
        &s,
        &format!(
            "/api/v1/queues/{id}/events?path=queue.log&offset={}",
            first.len()
        ),
        &s.ann,
    );
    let chunk = resumed.next("log");
    assert_eq!(chunk["offset"], first.len());
    assert_eq!(chunk["text"], "two \u{fffd}\n");
    s.end_queue(&id, Status::Passed);
    assert_eq!(resumed.next("end")["status"], "passed");
}

/// Two admins demote each other through the API at once: one of the two
/// requests is refused, and an enabled admin is left.
#[test]
fn concurrent_demotions_through_the_api_keep_an_admin() {
    let s = Server::start();
    let root_id = s
        .state
        .pool
        .get()
        .map(|mut c| store::user_by_name(&mut c, "root").unwrap().unwrap().id)
        .unwrap();
    let made = call(
        &s,
        "POST",
        "/api/v1/users",
        Auth::Bearer(&s.admin),
        Some(json!({"username": "second", "password": "correct horse battery", "is_admin": true})),
    );
    assert_eq!(made.status, 201, "{}", made.body);
    let second_id = made.json()["id"].as_i64().unwrap();
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let demote = |id: i64, auth: Auth<'static>| {
            let s = &s;
            scope.spawn(move || {
                call(
                    s,
                    "PATCH",
                    &format!("/api/v1/users/{id}"),
                    auth,
                    Some(json!({"is_admin": false})),
                )
                .status
            })
        };
        let a = demote(
            i64::from(root_id),
            Auth::Basic("second", "correct horse battery"),
        );
        let b = demote(second_id, Auth::Basic("root", "correct horse battery"));
        vec![a.join().unwrap(), b.join().unwrap()]
    });
    let mut sorted = statuses.clone();
    sorted.sort_unstable();
    // Both may be refused only if the first demotion's effect reached the
    // second request's auth (a non-admin gets 403); never both 200.
    assert!(sorted == [200, 409] || sorted == [200, 403], "{statuses:?}");
    assert_eq!(store::count_active_admins(&mut s.conn()).unwrap(), 1);
}
