//! Forge webhooks at the API (DESIGN section 12): `POST /api/v1/hooks/{repo}`
//! signed as Gitea, GitHub and GitLab sign, against a real app over HTTP and
//! a real git repository whose commits carry `.testarena.toml`; the hook
//! records, a queue's deliveries, and that nothing is created by any request
//! that is refused. The deliveries' sending is the end-to-end suite's
//! (`tests/forge`): the app here runs without its sender.
//!
//! The webhook secret is the value of `PATH`: a multi-threaded test cannot
//! change its own environment safely, and `PATH` is set and readable.

use serde_json::{Value, json};
use testarena_api::forge::signature::hmac_hex;
use testarena_domain::config::{Config, Forge};
use testarena_domain::store::deliveries::{self, NewDelivery};

use crate::support::{Auth, Resp, Server, agent, call, git};

const SECRET_ENV: &str = "PATH";
const ZERO: &str = "0000000000000000000000000000000000000000";

fn secret() -> String {
    std::env::var(SECRET_ENV).unwrap()
}

/// Webhooks of `forge` on the first repository, the secret in `PATH`.
pub fn enable(c: &mut Config, forge: Forge) {
    let r = &mut c.repos[0];
    r.forge = Some(forge);
    r.webhook_secret_env = Some(SECRET_ENV.into());
}

/// A signed Gitea hook to the first repository (`firmware`).
pub fn gitea_hook(s: &Server, event: &str, delivery: &str, body: &str) -> Resp {
    hook(s, Forge::Gitea, event, delivery, body)
}

fn forge_config(forge: Forge) -> impl FnOnce(&mut Config) {
    move |c: &mut Config| {
        c.server.public_url = Some("https://testarena.example/".into());
        c.server.max_body_bytes = 4096;
        enable(c, forge);
        let r = &mut c.repos[0];
        r.forge_api = Some("http://127.0.0.1:9/api/v1".into());
        r.forge_repo = Some("team/firmware".into());
        r.status_token_env = Some("TESTARENA_HOOK_TEST_TOKEN".into());
    }
}

fn server(forge: Forge) -> Server {
    Server::start_with(forge_config(forge))
}

/// Commits `.testarena.toml` (or removes it, `None`) on `branch` of the
/// server's repository; returns the new commit.
fn commit_toml(s: &Server, branch: &str, toml: Option<&str>) -> String {
    let repo = &s.repo;
    git(repo, &["checkout", "-q", "-B", branch]);
    let file = repo.join(".testarena.toml");
    match toml {
        Some(text) => std::fs::write(&file, text).unwrap(),
        None => {
            let _ = std::fs::remove_file(&file);
        }
    }
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "--allow-empty", "-m", "hook test"]);
    let out = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(repo)
        .output()
        .unwrap();
    git(repo, &["checkout", "-q", "main"]);
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

const MAIN_ONLY: &str = r#"
[[push]]
branches = ["main", "release/*"]
scenarios = ["scenarios/ok.xml"]
priority = 7
"#;

/// A push body as `forge` sends it.
fn push_body(forge: Forge, git_ref: &str, after: &str) -> String {
    match forge {
        Forge::Gitea => json!({"ref": git_ref, "before": ZERO, "after": after,
            "pusher": {"login": "ann", "username": "ann"},
            "repository": {"full_name": "team/firmware"}}),
        Forge::Github => json!({"ref": git_ref, "before": ZERO, "after": after,
            "deleted": after == ZERO, "pusher": {"name": "ann", "email": "ann@example.invalid"}}),
        Forge::Gitlab => json!({"object_kind": "push", "ref": git_ref, "before": ZERO,
            "after": after, "user_username": "ann", "user_name": "Ann"}),
    }
    .to_string()
}

/// How a request is signed.
#[derive(Clone, Copy)]
enum Sign<'a> {
    Right,
    With(&'a str),
    Missing,
}

/// The headers a forge sends with a hook.
fn forge_headers(
    forge: Forge,
    event: &str,
    delivery: Option<&str>,
    sign: Sign<'_>,
    body: &str,
) -> Vec<(String, String)> {
    let key = match sign {
        Sign::Right => secret(),
        Sign::With(k) => k.to_owned(),
        Sign::Missing => String::new(),
    };
    let (event_h, delivery_h, sig_h, sig) = match forge {
        Forge::Gitea => (
            "X-Gitea-Event",
            "X-Gitea-Delivery",
            "X-Gitea-Signature",
            hmac_hex(key.as_bytes(), body.as_bytes()),
        ),
        Forge::Github => (
            "X-GitHub-Event",
            "X-GitHub-Delivery",
            "X-Hub-Signature-256",
            format!("sha256={}", hmac_hex(key.as_bytes(), body.as_bytes())),
        ),
        Forge::Gitlab => (
            "X-Gitlab-Event",
            "X-Gitlab-Event-UUID",
            "X-Gitlab-Token",
            key.clone(),
        ),
    };
    let mut h = vec![(event_h.to_owned(), event.to_owned())];
    if let Some(d) = delivery {
        h.push((delivery_h.to_owned(), d.to_owned()));
    }
    if !matches!(sign, Sign::Missing) {
        h.push((sig_h.to_owned(), sig));
    }
    h
}

/// POSTs a hook with these headers and this raw body.
fn post(s: &Server, repo: &str, headers: &[(String, String)], body: &str) -> Resp {
    let mut req = ureq::http::Request::builder()
        .method("POST")
        .uri(s.url(&format!("/api/v1/hooks/{repo}")))
        .header("Content-Type", "application/json");
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let mut res = agent()
        .run(req.body(body.as_bytes().to_vec()).unwrap())
        .unwrap();
    let status = res.status().as_u16();
    let headers = res
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let body = res.body_mut().read_to_string().unwrap_or_default();
    Resp {
        status,
        headers,
        body,
    }
}

fn hook(s: &Server, forge: Forge, event: &str, delivery: &str, body: &str) -> Resp {
    post(
        s,
        "firmware",
        &forge_headers(forge, event, Some(delivery), Sign::Right, body),
        body,
    )
}

fn push_event(forge: Forge) -> &'static str {
    match forge {
        Forge::Gitlab => "Push Hook",
        _ => "push",
    }
}

fn queue_count(s: &Server) -> usize {
    let r = call(s, "GET", "/api/v1/queues", Auth::Bearer(&s.admin), None);
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["items"].as_array().unwrap().len()
}

fn hook_records(s: &Server) -> Vec<Value> {
    let r = call(
        s,
        "GET",
        "/api/v1/hooks/firmware/deliveries",
        Auth::Bearer(&s.ann),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json().as_array().unwrap().clone()
}

/// Nothing stored: no queue, no hook record, no queue folder.
fn assert_nothing_created(s: &Server) {
    assert_eq!(queue_count(s), 0);
    assert!(hook_records(s).is_empty());
    let dirs = std::fs::read_dir(s.home().join("queues")).unwrap().count();
    assert_eq!(dirs, 0, "no queue folder");
}

#[test]
fn a_signed_push_starts_the_matching_entries_at_the_pushed_commit_for_each_forge() {
    for forge in [Forge::Gitea, Forge::Github, Forge::Gitlab] {
        let s = server(forge);
        let sha = commit_toml(&s, "main", Some(MAIN_ONLY));
        let body = push_body(forge, "refs/heads/main", &sha);
        let r = hook(&s, forge, push_event(forge), "d-1", &body);
        assert_eq!(r.status, 200, "{forge}: {}", r.body);
        let receipt = r.json();
        assert_eq!(receipt["outcome"], "started", "{forge}: {receipt}");
        assert_eq!(receipt["redelivery"], false);
        let ids = receipt["queues"].as_array().unwrap();
        assert_eq!(ids.len(), 1, "{receipt}");
        let q = call(
            &s,
            "GET",
            &format!("/api/v1/queues/{}", ids[0].as_str().unwrap()),
            Auth::Bearer(&s.ann),
            None,
        )
        .json();
        assert_eq!(q["owner"], "testarena", "{q}");
        assert_eq!(q["triggered_by"], "ann", "{q}");
        assert_eq!(q["commit"], sha.as_str());
        assert_eq!(q["branch"], "main");
        assert_eq!(q["priority"], 7);
        assert_eq!(q["status"], "waiting");
        assert_eq!(q["tasks"][0]["scenario"], "scenarios/ok.xml");
        // A queue a user submits has no pusher.
        let mine = s.submit(&s.ann);
        assert_eq!(mine["triggered_by"], Value::Null);
        let records = hook_records(&s);
        assert_eq!(records.len(), 1);
        assert_eq!(records[0]["pusher"], "ann");
        assert_eq!(records[0]["commit"], sha.as_str());
        assert_eq!(records[0]["forge"], forge.as_str());
    }
}

#[test]
fn a_missing_or_wrong_signature_is_401_and_creates_nothing() {
    for forge in [Forge::Gitea, Forge::Github, Forge::Gitlab] {
        let s = server(forge);
        let sha = commit_toml(&s, "main", Some(MAIN_ONLY));
        let body = push_body(forge, "refs/heads/main", &sha);
        let event = push_event(forge);
        for sign in [Sign::Missing, Sign::With("not the secret"), Sign::With("")] {
            let r = post(
                &s,
                "firmware",
                &forge_headers(forge, event, Some("d"), sign, &body),
                &body,
            );
            r.assert_error(401, "unauthorized");
        }
        // Right secret, another body (GitLab's token signs no body); or
        // another forge's header shape.
        if forge != Forge::Gitlab {
            let signed_for_other =
                forge_headers(forge, event, Some("d"), Sign::Right, &format!("{body} "));
            post(&s, "firmware", &signed_for_other, &body).assert_error(401, "unauthorized");
        }
        let other = match forge {
            Forge::Gitea => Forge::Github,
            _ => Forge::Gitea,
        };
        let mut shaped = forge_headers(other, event, Some("d"), Sign::Right, &body);
        shaped.extend(forge_headers(forge, event, Some("d"), Sign::Missing, &body));
        post(&s, "firmware", &shaped, &body).assert_error(401, "unauthorized");
        // Unsigned garbage is 401 too, not 400: the signature comes first.
        let garbage = "{not json";
        post(
            &s,
            "firmware",
            &forge_headers(forge, event, Some("d"), Sign::With("x"), garbage),
            garbage,
        )
        .assert_error(401, "unauthorized");
        assert_nothing_created(&s);
        assert_eq!(hook(&s, forge, event, "d", &body).status, 200);
    }
}

#[test]
fn a_repository_without_a_webhook_secret_refuses_every_hook() {
    // No webhook_secret_env; a variable that is not set; no such repository.
    let unset = Server::start_with(|c| {
        forge_config(Forge::Gitea)(c);
        c.repos[0].webhook_secret_env = Some("TESTARENA_HOOK_TEST_SURELY_UNSET".into());
    });
    let none = Server::start_with(|c| {
        forge_config(Forge::Gitea)(c);
        c.repos[0].webhook_secret_env = None;
    });
    for s in [&unset, &none] {
        let sha = commit_toml(s, "main", Some(MAIN_ONLY));
        let body = push_body(Forge::Gitea, "refs/heads/main", &sha);
        for key in [secret(), String::new()] {
            let h = forge_headers(Forge::Gitea, "push", Some("d"), Sign::With(&key), &body);
            post(s, "firmware", &h, &body).assert_error(401, "unauthorized");
        }
        let h = forge_headers(Forge::Gitea, "push", Some("d"), Sign::Right, &body);
        post(s, "other", &h, &body).assert_error(401, "unauthorized");
        post(s, "..", &h, &body).assert_error(401, "unauthorized");
        assert_nothing_created(s);
    }
}

#[test]
fn malformed_hooks_are_400_and_big_ones_413_and_create_nothing() {
    let s = server(Forge::Gitea);
    let sha = commit_toml(&s, "main", Some(MAIN_ONLY));
    for body in [
        "{not json",
        "",
        "[1, 2]",
        r#"{"ref": "refs/heads/main"}"#,
        r#"{"ref": "refs/heads/main", "after": "abc"}"#,
    ] {
        hook(&s, Forge::Gitea, "push", "d", body).assert_error(400, "bad_request");
    }
    // No event header.
    let body = push_body(Forge::Gitea, "refs/heads/main", &sha);
    let mut h = forge_headers(Forge::Gitea, "push", Some("d"), Sign::Right, &body);
    h.retain(|(k, _)| k != "X-Gitea-Event");
    post(&s, "firmware", &h, &body).assert_error(400, "bad_request");
    // A delivery id no forge would send.
    let h = forge_headers(
        Forge::Gitea,
        "push",
        Some(&"x".repeat(300)),
        Sign::Right,
        &body,
    );
    post(&s, "firmware", &h, &body).assert_error(400, "bad_request");
    // Over max_body_bytes (4096 here), signed or not.
    let big = format!(
        r#"{{"ref": "refs/heads/main", "after": "{sha}", "pad": "{}"}}"#,
        "x".repeat(5000)
    );
    hook(&s, Forge::Gitea, "push", "d", &big).assert_error(413, "payload_too_large");
    assert_nothing_created(&s);
}

#[test]
fn pings_tags_deletions_and_other_events_start_nothing() {
    let s = server(Forge::Github);
    let sha = commit_toml(&s, "main", Some(MAIN_ONLY));
    let cases = [
        (
            "ping",
            json!({"zen": "Design for failure.", "hook_id": 1}).to_string(),
            200,
        ),
        (
            "push",
            push_body(Forge::Github, "refs/tags/v1.0", &sha),
            200,
        ),
        (
            "push",
            push_body(Forge::Github, "refs/heads/main", ZERO),
            200,
        ),
        ("issues", json!({"action": "opened"}).to_string(), 202),
    ];
    for (i, (event, body, status)) in cases.iter().enumerate() {
        let r = hook(&s, Forge::Github, event, &format!("d-{i}"), body);
        assert_eq!(r.status, *status, "{event}: {}", r.body);
        assert_eq!(r.json()["outcome"], "ignored", "{}", r.body);
        assert!(r.json()["queues"].as_array().unwrap().is_empty());
        assert!(r.json()["reason"].as_str().is_some_and(|t| !t.is_empty()));
    }
    // GitLab names its tag pushes by event.
    let gl = server(Forge::Gitlab);
    let sha = commit_toml(&gl, "main", Some(MAIN_ONLY));
    let r = hook(
        &gl,
        Forge::Gitlab,
        "Tag Push Hook",
        "t",
        &push_body(Forge::Gitlab, "refs/tags/v1", &sha),
    );
    assert_eq!(
        (r.status, r.json()["outcome"].clone()),
        (200, json!("ignored"))
    );
    assert_eq!(queue_count(&s) + queue_count(&gl), 0);
}

#[test]
fn a_redelivery_answers_the_first_deliverys_queues_and_makes_none() {
    let s = server(Forge::Gitea);
    let sha = commit_toml(&s, "main", Some(MAIN_ONLY));
    let body = push_body(Forge::Gitea, "refs/heads/main", &sha);
    let first = hook(&s, Forge::Gitea, "push", "abc-123", &body).json();
    let again = hook(&s, Forge::Gitea, "push", "abc-123", &body);
    assert_eq!(again.status, 200);
    let again = again.json();
    assert_eq!(again["redelivery"], true);
    assert_eq!(again["queues"], first["queues"]);
    assert_eq!(queue_count(&s), 1);
    // Another delivery id of the same push is a new delivery.
    let other = hook(&s, Forge::Gitea, "push", "abc-124", &body).json();
    assert_eq!(other["redelivery"], false);
    assert_eq!(queue_count(&s), 2);
    // Without a delivery id (an older GitLab), the same body is the same delivery.
    let gl = server(Forge::Gitlab);
    let sha = commit_toml(&gl, "main", Some(MAIN_ONLY));
    let body = push_body(Forge::Gitlab, "refs/heads/main", &sha);
    let h = forge_headers(Forge::Gitlab, "Push Hook", None, Sign::Right, &body);
    let a = post(&gl, "firmware", &h, &body).json();
    let b = post(&gl, "firmware", &h, &body).json();
    assert!(a["delivery"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(
        (b["redelivery"].clone(), b["queues"].clone()),
        (json!(true), a["queues"].clone())
    );
    assert_eq!(queue_count(&gl), 1);
}

#[test]
fn a_branch_no_entry_matches_or_a_commit_without_the_file_starts_nothing() {
    let s = server(Forge::Gitea);
    let docs = commit_toml(&s, "docs", Some(MAIN_ONLY));
    let r = hook(
        &s,
        Forge::Gitea,
        "push",
        "1",
        &push_body(Forge::Gitea, "refs/heads/docs", &docs),
    )
    .json();
    assert_eq!(r["outcome"], "ignored");
    assert!(
        r["reason"].as_str().unwrap().contains("no [[push]] entry"),
        "{r}"
    );
    // release/* matches one level only.
    let deep = commit_toml(&s, "release/2/x", Some(MAIN_ONLY));
    let r = hook(
        &s,
        Forge::Gitea,
        "push",
        "2",
        &push_body(Forge::Gitea, "refs/heads/release/2/x", &deep),
    )
    .json();
    assert_eq!(r["outcome"], "ignored", "{r}");
    let rel = commit_toml(&s, "release/1", Some(MAIN_ONLY));
    let r = hook(
        &s,
        Forge::Gitea,
        "push",
        "3",
        &push_body(Forge::Gitea, "refs/heads/release/1", &rel),
    )
    .json();
    assert_eq!(r["outcome"], "started", "{r}");
    let bare = commit_toml(&s, "main", None);
    let r = hook(
        &s,
        Forge::Gitea,
        "push",
        "4",
        &push_body(Forge::Gitea, "refs/heads/main", &bare),
    )
    .json();
    assert_eq!(r["outcome"], "ignored");
    assert!(
        r["reason"].as_str().unwrap().contains("no .testarena.toml"),
        "{r}"
    );
    assert_eq!(queue_count(&s), 1);
}

#[test]
fn a_bad_testarena_toml_starts_nothing_and_says_why_in_the_record_and_an_error_status() {
    let s = server(Forge::Gitea);
    let cases = [
        ("[[push]\nbranches = 1\n", ".testarena.toml: "),
        (
            "[[push]]\nbranches = [\"main\"]\nscenarios = [\"scenarios/bad.xml\"]\n",
            "push[0]: scenarios[0]",
        ),
        (
            "[[push]]\nbranches = [\"main\"]\nscenarios = [\"scenarios/missing.xml\"]\n",
            "does not exist",
        ),
        (
            "[[push]]\nbranches = [\"main\"]\nscenarios = [\"scenarios/ok.xml\"]\ntarget = \"z80\"\n",
            "push[0]: target",
        ),
        // One bad entry of two: nothing at all starts.
        (
            "[[push]]\nbranches = [\"*\"]\nscenarios = [\"scenarios/ok.xml\"]\n\
             [[push]]\nbranches = [\"main\"]\nscenarios = [\"scenarios/passwd.xml\"]\n",
            "push[1]: scenarios[0]",
        ),
    ];
    for (i, (toml, says)) in cases.iter().enumerate() {
        let sha = commit_toml(&s, "main", Some(toml));
        let r = hook(
            &s,
            Forge::Gitea,
            "push",
            &format!("bad-{i}"),
            &push_body(Forge::Gitea, "refs/heads/main", &sha),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        let r = r.json();
        assert_eq!(r["outcome"], "error", "{toml}: {r}");
        let reason = r["reason"].as_str().unwrap();
        assert!(reason.contains(says), "{toml}: {reason}");
        let record = hook_records(&s)
            .into_iter()
            .find(|h| h["delivery"] == format!("bad-{i}"))
            .unwrap();
        assert_eq!(record["reason"], reason);
        let sent = record["deliveries"].as_array().unwrap();
        assert_eq!(sent.len(), 1, "{record}");
        let status = &sent[0];
        assert_eq!(
            (
                status["kind"].as_str(),
                status["event"].as_str(),
                status["context"].as_str(),
                status["state"].as_str()
            ),
            (
                Some("status"),
                Some("error"),
                Some("testarena"),
                Some("pending")
            )
        );
        assert_eq!(
            status["target_url"],
            format!("http://127.0.0.1:9/api/v1/repos/team/firmware/statuses/{sha}")
        );
        let payload: Value = serde_json::from_str(status["payload"].as_str().unwrap()).unwrap();
        assert_eq!(payload["state"], "error");
        assert_eq!(payload["context"], "testarena");
        assert!(
            reason.starts_with(payload["description"].as_str().unwrap()),
            "{payload}"
        );
    }
    assert_eq!(queue_count(&s), 0);
}

#[test]
fn a_queues_deliveries_are_listed_with_their_tries() {
    let s = server(Forge::Gitea);
    let q = s.submit(&s.ann);
    let id = q["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/queues/{id}/deliveries");
    call(&s, "GET", &path, Auth::None, None).assert_error(401, "unauthorized");
    call(
        &s,
        "GET",
        "/api/v1/queues/nope/deliveries",
        Auth::Bearer(&s.ann),
        None,
    )
    .assert_error(404, "not_found");
    let r = call(&s, "GET", &path, Auth::Bearer(&s.ann), None);
    assert_eq!((r.status, r.json()), (200, json!([])));
    let mut conn = s.conn();
    deliveries::insert_deliveries(
        &mut conn,
        &[
            NewDelivery {
                kind: "status".into(),
                event: "pending".into(),
                queue_id: Some(id.clone()),
                forge: Some("gitea".into()),
                auth_env: Some("T".into()),
                context: Some("testarena".into()),
                target_url: "http://127.0.0.1:9/api/v1/repos/team/firmware/statuses/abc".into(),
                payload: r#"{"state":"pending"}"#.into(),
            },
            NewDelivery {
                kind: "notify".into(),
                event: "queue.started".into(),
                queue_id: Some(id.clone()),
                target_url: "https://hooks.chat.example/services/T000/B000/s3cr3t".into(),
                payload: "{}".into(),
                ..NewDelivery::default()
            },
        ],
    )
    .unwrap();
    drop(conn);
    let list = call(&s, "GET", &path, Auth::Bearer(&s.ann), None).json();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["kind"], "status");
    assert_eq!(list[0]["attempts"], 0);
    assert!(list[0]["next_try_at"].is_string());
    // A chat service's webhook URL is a secret: only its host is shown.
    assert_eq!(list[1]["target_url"], "https://hooks.chat.example/…");
    assert!(!list[1].to_string().contains("s3cr3t"));
}
