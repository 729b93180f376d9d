//! Pushes start runs: the lx106 firmware in QEMU, Gitea-shaped hooks.

use serde_json::Value;
use testarena_testkit::repo::Content;

use super::{DEADLINE, Forged, Kind, Options, PUBLIC_URL, TOKEN, forged, toml};

const MAIN_AND_FAIL: &str = r#"
[[push]]
branches = ["main", "fail"]
scenarios = ["scenarios/unit.xml"]
"#;

const UNIT: &str = "testarena/scenarios/unit.xml";

fn the_queue(f: &Forged, sent: &super::Sent) -> Value {
    assert_eq!(sent.code, 200, "{}", sent.answer);
    assert_eq!(sent.answer["outcome"], "started", "{}", sent.answer);
    let ids = Forged::queues_of(sent);
    assert_eq!(ids.len(), 1, "{}", sent.answer);
    f.farm.queue(&ids[0])
}

#[test]
fn a_push_to_main_runs_at_the_pushed_commit_and_the_forge_gets_pending_then_the_verdict() {
    let f = forged(Options {
        fixture: true,
        ..Options::small(Kind::Gitea)
    });
    let (sha, sent) = f.push("main", &[toml(MAIN_AND_FAIL)]);
    let q = the_queue(&f, &sent);
    let id = q["id"].as_str().unwrap().to_owned();
    assert_eq!(q["commit"], sha.as_str(), "pinned to the pushed commit");
    assert_eq!(
        (q["owner"].as_str(), q["triggered_by"].as_str()),
        (Some("testarena"), Some("ann"))
    );
    assert_eq!(q["tasks"][0]["scenario"], "scenarios/unit.xml");
    let done = f.farm.wait_final(&id, DEADLINE);
    assert_eq!(done["status"], "passed", "{done}");
    assert!(
        f.farm
            .queue_log(&id)
            .contains(&format!("commit {sha} (main)"))
    );
    f.wait_status(&sha, "success", "testarena");
    f.wait_status(&sha, "success", UNIT);
    assert_eq!(f.states(&sha, "testarena"), ["pending", "success"]);
    assert_eq!(f.states(&sha, UNIT), ["pending", "success"]);
    // As Gitea documents it: the token, the body, the link to the queue.
    let last = f
        .standin
        .statuses(&sha)
        .into_iter()
        .rfind(|r| r.json["context"] == "testarena")
        .unwrap();
    assert_eq!(
        last.path,
        format!("/api/v1/repos/team/firmware/statuses/{sha}")
    );
    assert_eq!(
        last.header("authorization"),
        Some(format!("token {TOKEN}").as_str())
    );
    assert_eq!(
        last.json["target_url"],
        format!("{PUBLIC_URL}/#/queues/{id}")
    );
    let t = &done["tasks"][0];
    let mut counts = format!("{} passed, {} failed", t["passed"], t["failed"]);
    if t["skipped"].as_i64() > Some(0) {
        counts.push_str(&format!(", {} skipped", t["skipped"]));
    }
    assert_eq!(last.json["description"], counts.as_str());
    // The deliveries, as the API and the metrics show them.
    let delivered = f.wait_delivery(&id, "success", Some("testarena"), |d| {
        d["state"] == "delivered"
    });
    assert_eq!(
        (
            delivered["attempts"].as_i64(),
            delivered["last_code"].as_i64()
        ),
        (Some(1), Some(201))
    );
    let (_, metrics) = f.farm.get_raw("/metrics");
    let line = metrics
        .lines()
        .find(|l| l.starts_with("testarena_deliveries{kind=\"status\",outcome=\"delivered\"}"))
        .unwrap_or_else(|| panic!("{metrics}"));
    let n: i64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n >= 2, "{line}");

    // The failing branch: its own push, its own verdict.
    let (fail_sha, sent) = f.push("fail", &[toml(MAIN_AND_FAIL)]);
    let q = the_queue(&f, &sent);
    let done = f.farm.wait_final(q["id"].as_str().unwrap(), DEADLINE);
    assert_eq!(done["status"], "failed", "{done}");
    f.wait_status(&fail_sha, "failure", "testarena");
    f.wait_status(&fail_sha, "failure", UNIT);
    assert_eq!(f.states(&fail_sha, "testarena"), ["pending", "failure"]);

    // A branch no entry matches starts nothing and gets no status.
    let before = f.queue_count();
    let (docs_sha, sent) = f.push("docs", &[("NOTES.md", Content::Text("notes\n".into()))]);
    assert_eq!(sent.code, 200);
    assert_eq!(sent.answer["outcome"], "ignored", "{}", sent.answer);
    assert!(sent.answer["queues"].as_array().unwrap().is_empty());
    assert_eq!(f.queue_count(), before);
    assert!(f.standin.statuses(&docs_sha).is_empty());
}

#[test]
fn a_wrong_signature_is_401_and_a_redelivery_makes_nothing_new() {
    let f = forged(Options::small(Kind::Gitea));
    let quick = "[[push]]\nbranches = [\"main\"]\nscenarios = [\"scenarios/quick.xml\"]\n";
    f.set_hook_secret("not the secret");
    let (_, sent) = f.push("main", &[toml(quick)]);
    assert_eq!(sent.code, 401, "{}", sent.answer);
    assert_eq!(sent.answer["error"]["code"], "unauthorized");
    assert_eq!(f.queue_count(), 0);
    assert_eq!(
        f.farm.get("/api/v1/hooks/firmware/deliveries"),
        serde_json::json!([])
    );

    f.set_hook_secret(super::HOOK_SECRET);
    let (sha, sent) = f.push("main", &[("README.md", Content::Text("again\n".into()))]);
    assert_eq!(
        (sent.code, sent.answer["outcome"].as_str()),
        (200, Some("started")),
        "{}",
        sent.answer
    );
    let first = Forged::queues_of(&sent);
    let (code, again) = f.resend(&sent);
    assert_eq!(code, 200, "{again}");
    assert_eq!(again["redelivery"], true);
    assert_eq!(again["queues"], sent.answer["queues"]);
    assert_eq!(f.queue_count(), 1, "the redelivery made nothing");
    let done = f.farm.wait_final(&first[0], DEADLINE);
    assert_eq!(done["status"], "passed");
    f.wait_status(&sha, "success", "testarena");
    // Redelivered after the queue ended: still nothing new.
    assert_eq!(f.resend(&sent).1["queues"], sent.answer["queues"]);
    assert_eq!(f.queue_count(), 1);
}

#[test]
fn a_bad_testarena_toml_starts_nothing_and_the_commit_gets_an_error_status() {
    let f = forged(Options::small(Kind::Gitea));
    let bad = "[[push]]\nbranches = [\"main\"]\nscenario = [\"scenarios/quick.xml\"]\n";
    let (sha, sent) = f.push("main", &[toml(bad)]);
    assert_eq!(sent.code, 200);
    assert_eq!(sent.answer["outcome"], "error", "{}", sent.answer);
    let reason = sent.answer["reason"].as_str().unwrap().to_owned();
    assert!(
        reason.starts_with(".testarena.toml: ") && reason.contains("scenario"),
        "{reason}"
    );
    assert_eq!(f.queue_count(), 0);
    f.wait_status(&sha, "error", "testarena");
    let status = f.standin.statuses(&sha).pop().unwrap();
    assert!(reason.starts_with(status.json["description"].as_str().unwrap()));
    // The hook's record says why, with its delivered error status.
    let records = f.farm.get("/api/v1/hooks/firmware/deliveries");
    let record = &records[0];
    assert_eq!(
        (record["outcome"].as_str(), record["reason"].as_str()),
        (Some("error"), Some(reason.as_str()))
    );
    let wait = super::DEADLINE;
    let delivered = testarena_testkit::wait_for(wait, "the error status delivered", || {
        let records = f.farm.get("/api/v1/hooks/firmware/deliveries");
        let d = records[0]["deliveries"][0].clone();
        (d["state"] == "delivered").then_some(d)
    });
    assert_eq!(
        (delivered["event"].as_str(), delivered["attempts"].as_i64()),
        (Some("error"), Some(1))
    );
}
