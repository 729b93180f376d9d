//! `testarena rerun --failed-only --count N [--tip]` (DESIGN section 11).

use super::support::Farm;

#[test]
fn rerun_failed_only_with_a_count_makes_that_many_subsets() {
    let farm = Farm::start();
    let cli = farm.cli();
    // The fail branch: unit fails, steady and coin pass.
    let out = cli.run(&[
        "submit",
        "fail",
        "-s",
        "scenarios/history.xml",
        "--id",
        "cli-hist",
        "--wait",
    ]);
    assert_eq!(out.code, Some(1), "{out:?}");

    let out = cli.run(&["rerun", "cli-hist", "--failed-only", "--count", "2"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let ids: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(ids.len(), 2, "one id a line: {out:?}");
    let original = cli.run(&["status", "cli-hist", "--json"]).json();
    for id in ids {
        let q = cli.run(&["status", id, "--json"]).json();
        assert_eq!(q["tasks"][0]["only"], serde_json::json!(["unit"]), "{q:#}");
        assert_eq!(q["commit"], original["commit"]);
    }

    let out = cli.run(&["tests", "--repo", "firmware", "--sort", "name", "--json"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let names: Vec<String> = out.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        names.contains(&"coin".to_owned()) && names.contains(&"unit".to_owned()),
        "{names:?}"
    );
    let out = cli.run(&[
        "history",
        "unit",
        "-s",
        "scenarios/history.xml",
        "--repo",
        "firmware",
    ]);
    assert_eq!(out.code, Some(0), "{out:?}");
    // The reruns may have run meanwhile: every run of unit failed, the first among them.
    assert!(!out.stdout.is_empty(), "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines.iter().all(|l| l.starts_with("failed")), "{out:?}");
    assert!(lines.iter().any(|l| l.contains("cli-hist")), "{out:?}");

    let out = cli.run(&["rerun", "cli-hist", "--count", "21"]);
    assert_ne!(out.code, Some(0), "a count over 20 is refused: {out:?}");
    let out = cli.run(&["rerun", "cli-hist", "--tip", "--json"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.json()["tasks"][0]["scenario"], "scenarios/history.xml");
}
