//! One commit of the fixture's failing branch run again and again: a test
//! that passed and then failed there is a new failure and known flaky,
//! compare lists it under `new_failures` and, once it passes again, under
//! `fixed`; `failed_only` reruns only what did not pass; `count = 3`
//! makes three queues at the same commit.

use std::time::Duration;

use serde_json::{Value, json};
use testarena_testkit::Farm;

use super::setup;

const DEADLINE: Duration = Duration::from_secs(120);
const SCENARIO: &str = "scenarios/history.xml";

fn test<'a>(q: &'a Value, name: &str) -> &'a Value {
    q["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["tests"].as_array().unwrap())
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no test {name} in {q:#}"))
}

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|t| {
            format!(
                "{}:{}",
                t["scenario"].as_str().unwrap(),
                t["name"].as_str().unwrap()
            )
        })
        .collect()
}

fn rerun(farm: &Farm, id: &str, body: Value) -> Value {
    let r = farm.call("POST", &format!("/api/v1/queues/{id}/rerun"), Some(&body));
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()
}

#[test]
fn a_commit_that_passes_and_fails_is_flaky_and_reruns_take_only_what_failed() {
    let farm = Farm::start(setup());
    let coin = farm.home.join("history-coin");
    let _ = std::fs::remove_file(&coin);

    // 1: the failing branch; unit fails (its Unity case), coin passes.
    let first = farm.submit("fail", &[SCENARIO]);
    let q1 = farm.wait_final(&first, DEADLINE);
    assert_eq!(q1["status"], "failed", "{q1:#}");
    assert_eq!(test(&q1, "unit")["status"], "failed");
    assert_eq!(test(&q1, "coin")["status"], "passed");
    assert_eq!(test(&q1, "coin")["new_failure"], false);
    assert_eq!(test(&q1, "coin")["known_flaky"], false);
    let commit = q1["commit"].as_str().unwrap().to_owned();

    // 2: the same commit with the coin turned: coin fails after a pass.
    std::fs::write(&coin, "fail\n").unwrap();
    let second = farm.submit_with("fail", &[SCENARIO], json!({"commit": commit}));
    let q2 = farm.wait_final(&second, DEADLINE);
    assert_eq!(q2["commit"], commit.as_str());
    let c2 = test(&q2, "coin");
    assert_eq!(c2["status"], "failed", "{q2:#}");
    assert_eq!(c2["new_failure"], true, "it passed the run before: {c2}");
    assert_eq!(
        c2["known_flaky"], true,
        "passed and failed at one commit: {c2}"
    );
    assert_eq!(
        test(&q2, "unit")["new_failure"],
        false,
        "it failed before too"
    );
    assert_eq!(test(&q2, "steady")["status"], "passed");
    assert!(test(&q2, "steady")["baseline_ms"].is_i64(), "{q2:#}");
    let cmp = farm.get(&format!("/api/v1/queues/{second}/compare"));
    assert_eq!(cmp["base"], first.as_str());
    assert_eq!(names(&cmp["new_failures"]), [format!("{SCENARIO}:coin")]);
    assert!(
        names(&cmp["still_failing"]).contains(&format!("{SCENARIO}:unit")),
        "{cmp:#}"
    );
    assert_eq!(names(&cmp["flaky"]), [format!("{SCENARIO}:coin")]);

    // The history and the tests list say the same.
    let runs = farm.get(&format!(
        "/api/v1/tests/history?repo=firmware&scenario={SCENARIO}&name=coin"
    ));
    let verdicts: Vec<&str> = runs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(verdicts, ["failed", "passed"], "{runs:#}");
    assert_eq!(runs["items"][0]["queue_id"], second.as_str());
    assert_eq!(runs["items"][0]["ran_on"], "qemu");
    let tests = farm.get("/api/v1/tests?repo=firmware&sort=flaky");
    assert_eq!(tests["items"][0]["name"], "coin", "{tests:#}");
    assert_eq!(tests["items"][0]["flaky"], true);

    // 3: failed_only with the coin turned back: only unit and coin run.
    std::fs::remove_file(&coin).unwrap();
    let q3 = rerun(&farm, &second, json!({"failed_only": true}));
    assert_eq!(q3["commit"], commit.as_str());
    let mut only: Vec<String> = serde_json::from_value(q3["tasks"][0]["only"].clone()).unwrap();
    only.sort();
    assert_eq!(only, ["coin", "unit"]);
    let third = q3["id"].as_str().unwrap().to_owned();
    let q3 = farm.wait_final(&third, DEADLINE);
    let ran: Vec<&str> = q3["tasks"][0]["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .filter(|n| !n.starts_with("unit/"))
        .collect();
    assert!(
        !ran.contains(&"steady"),
        "steady passed: not run again: {ran:?}"
    );
    assert_eq!(test(&q3, "coin")["status"], "passed");
    assert_eq!(
        test(&q3, "unit")["status"],
        "failed",
        "the firmware still fails"
    );
    assert!(
        !farm.queue_log(&third).contains("steady"),
        "{}",
        farm.queue_log(&third)
    );
    let cmp = farm.get(&format!("/api/v1/queues/{third}/compare"));
    assert_eq!(cmp["base"], second.as_str());
    assert_eq!(names(&cmp["fixed"]), [format!("{SCENARIO}:coin")]);
    assert_eq!(cmp["removed"], json!([]), "a subset removes nothing");

    // 4: three queues at the same commit, each run to its end.
    let three = rerun(&farm, &third, json!({"count": 3}));
    let three = three.as_array().unwrap();
    assert_eq!(three.len(), 3);
    for q in three {
        assert_eq!(q["commit"], commit.as_str());
        let id = q["id"].as_str().unwrap();
        let q = farm.wait_final(id, DEADLINE);
        assert_eq!(test(&q, "coin")["status"], "passed", "{q:#}");
        assert_eq!(q["commit"], commit.as_str());
    }
    let runs = farm.get(&format!(
        "/api/v1/tests/history?repo=firmware&scenario={SCENARIO}&name=coin&branch=fail"
    ));
    assert_eq!(runs["items"].as_array().unwrap().len(), 6, "{runs:#}");
    farm.assert_no_leftovers();
}
