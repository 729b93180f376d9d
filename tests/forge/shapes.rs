//! GitHub- and GitLab-shaped pushes and statuses, and signed `[[notify]]`
//! webhooks. The small repository (`<run>` scenarios).

use std::io::Write as _;
use std::process::{Command, Stdio};

use serde_json::Value;
use testarena_testkit::wait_for;

use super::{DEADLINE, Forged, Kind, NOTIFY_SECRET, Options, PUBLIC_URL, TOKEN, forged, toml};

const QUICK: &str = "[[push]]\nbranches = [\"main\"]\nscenarios = [\"scenarios/quick.xml\"]\n";

/// Pushes `main` and waits for its queue to pass; the commit and queue id.
fn push_and_pass(f: &Forged) -> (String, String) {
    let (sha, sent) = f.push("main", &[toml(QUICK)]);
    assert_eq!(
        (sent.code, sent.answer["outcome"].as_str()),
        (200, Some("started")),
        "{}",
        sent.answer
    );
    let id = Forged::queues_of(&sent).remove(0);
    let q = f.farm.wait_final(&id, DEADLINE);
    assert_eq!(
        (q["status"].as_str(), q["triggered_by"].as_str()),
        (Some("passed"), Some("ann"))
    );
    (sha, id)
}

#[test]
fn a_github_push_gets_its_statuses_as_github_documents_them() {
    let f = forged(Options::small(Kind::Github));
    let (sha, id) = push_and_pass(&f);
    f.wait_status(&sha, "success", "testarena");
    // A queue of milliseconds: its `pending` may be superseded before it
    // is sent; the verdict is last either way.
    assert_eq!(
        f.states(&sha, "testarena").last().map(String::as_str),
        Some("success")
    );
    let r = f
        .standin
        .statuses(&sha)
        .into_iter()
        .rfind(|r| r.json["context"] == "testarena")
        .unwrap();
    assert_eq!(r.path, format!("/repos/team/firmware/statuses/{sha}"));
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(r.header("accept"), Some("application/vnd.github+json"));
    assert!(r.header("x-github-api-version").is_some());
    assert_eq!(r.json["target_url"], format!("{PUBLIC_URL}/#/queues/{id}"));
    assert_eq!(r.json["description"], "1 passed, 0 failed");
}

#[test]
fn a_gitlab_push_gets_its_statuses_as_gitlab_documents_them() {
    let f = forged(Options::small(Kind::Gitlab));
    let (sha, _) = push_and_pass(&f);
    f.wait_status(&sha, "success", "testarena/scenarios/quick.xml");
    f.wait_status(&sha, "success", "testarena");
    let r = f
        .standin
        .statuses(&sha)
        .into_iter()
        .rfind(|r| r.json["name"] == "testarena")
        .unwrap();
    assert_eq!(
        r.path,
        format!("/api/v4/projects/team%2Ffirmware/statuses/{sha}")
    );
    assert_eq!(r.header("private-token"), Some(TOKEN));
    assert!(
        r.json.get("context").is_none(),
        "GitLab names it `name`: {}",
        r.json
    );
}

/// The hex HMAC-SHA256 of `body` under `key`, by openssl.
fn openssl_hmac(key: &str, body: &str) -> String {
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-hmac", key])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim().rsplit(' ').next().unwrap().to_owned()
}

#[test]
fn notifications_are_sent_on_start_and_end_signed_when_a_secret_is_set() {
    let f = forged(Options {
        notify: true,
        ..Options::small(Kind::Gitea)
    });
    let (_, id) = push_and_pass(&f);
    let chat = wait_for(DEADLINE, "queue.started and queue.finished", || {
        let got = f.standin.notifications("chat");
        (got.len() >= 2).then_some(got)
    });
    let events: Vec<&str> = chat
        .iter()
        .map(|r| r.json["event"].as_str().unwrap())
        .collect();
    let mut sorted = events.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, ["queue.finished", "queue.started"], "{events:?}");
    for r in &chat {
        assert_eq!(r.json["queue"]["id"], id.as_str());
        assert_eq!(r.header("x-testarena-event"), r.json["event"].as_str());
        let expected = format!("sha256={}", openssl_hmac(NOTIFY_SECRET, &r.body));
        assert_eq!(r.header("x-testarena-signature"), Some(expected.as_str()));
    }
    let finished = chat
        .iter()
        .find(|r| r.json["event"] == "queue.finished")
        .unwrap();
    assert_eq!(finished.json["queue"]["status"], "passed");
    assert_eq!(finished.json["url"], format!("{PUBLIC_URL}/#/queues/{id}"));
    // The second webhook has no secret: unsigned, and only the end.
    let plain = wait_for(DEADLINE, "the unsigned queue.finished", || {
        f.standin.notifications("plain").into_iter().next()
    });
    assert_eq!(plain.json["event"], "queue.finished");
    assert!(plain.header("x-testarena-signature").is_none());
    // The queue's page lists them, the URL shown as its host only.
    let listed: Vec<Value> = f
        .deliveries_of(&id)
        .into_iter()
        .filter(|d| d["kind"] == "notify")
        .collect();
    assert_eq!(listed.len(), 3, "{listed:#?}");
    assert!(
        listed
            .iter()
            .all(|d| d["target_url"].as_str().unwrap().ends_with("/…"))
    );
}
