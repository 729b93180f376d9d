//! JUnit XML of a queue, built from its stored results.
//!
//! The worker writes it to `queues/<id>/junit.xml` when a queue ends; the API
//! builds the same document from the database when that file is missing, so
//! both must come from this one function.
//!
//! Each task is a `<testsuite>` named after its scenario; each recorded test
//! result is a `<testcase>`. A task that never ran (skipped) or ended without
//! results still appears, with its reason, so nothing silently vanishes.
//!
//! [`read`] reads the JUnit files other tools write (`<run junit>`).

pub mod read;

use std::fmt::Write as _;

use quick_xml::escape::escape;

use crate::models::{QueueDetail, TestCaseRow};
use crate::status::Status;

/// Renders the JUnit XML of a queue.
pub fn render(detail: &QueueDetail) -> String {
    let q = &detail.queue;
    let (mut tests, mut failures, mut errors, mut skipped) = (0, 0, 0, 0);
    let mut suites = String::new();
    for (task, cases) in &detail.tasks {
        let synthetic;
        let cases: &[TestCaseRow] = if cases.is_empty() && task.status().is_final() {
            // No result was recorded: report the task itself as one case.
            synthetic = [TestCaseRow {
                id: 0,
                task_id: task.id.clone(),
                name: task.scenario.clone(),
                status: match task.status() {
                    Status::Aborted => Status::Error.as_str().to_owned(),
                    other => other.as_str().to_owned(),
                },
                duration_ms: None,
                message: task.status_reason.clone(),
            }];
            &synthetic
        } else {
            cases
        };
        let count = |s: Status| cases.iter().filter(|c| c.status() == s).count();
        let (f, e, s) = (
            count(Status::Failed),
            count(Status::Error),
            count(Status::Skipped),
        );
        tests += cases.len();
        failures += f;
        errors += e;
        skipped += s;
        let time: i64 = cases
            .iter()
            .filter_map(|c| c.duration_ms)
            .map(i64::from)
            .sum();
        let _ = writeln!(
            suites,
            r#"  <testsuite name="{}" id="{}" tests="{}" failures="{f}" errors="{e}" skipped="{s}" time="{}">"#,
            escape(task.scenario.as_str()),
            escape(task.id.as_str()),
            cases.len(),
            seconds(time),
        );
        for case in cases {
            write_case(&mut suites, &task.id, case);
        }
        suites.push_str("  </testsuite>\n");
    }
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        r#"<testsuites name="{}" tests="{tests}" failures="{failures}" errors="{errors}" skipped="{skipped}">"#,
        escape(q.id.as_str()),
    );
    out.push_str(&suites);
    out.push_str("</testsuites>\n");
    out
}

fn write_case(out: &mut String, classname: &str, case: &TestCaseRow) {
    let time = seconds(case.duration_ms.map(i64::from).unwrap_or(0));
    let _ = write!(
        out,
        r#"    <testcase name="{}" classname="{}" time="{time}""#,
        escape(case.name.as_str()),
        escape(classname),
    );
    let message = escape(clean(case.message.as_deref().unwrap_or("")).as_str()).into_owned();
    let element = match case.status() {
        Status::Failed => Some("failure"),
        Status::Error | Status::Aborted => Some("error"),
        Status::Skipped => Some("skipped"),
        _ => None,
    };
    match element {
        Some(element) => {
            let _ = writeln!(
                out,
                ">\n      <{element} message=\"{message}\"/>\n    </testcase>"
            );
        }
        None => out.push_str("/>\n"),
    }
}

fn seconds(ms: i64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// XML 1.0 cannot hold most control characters, even escaped: drop them.
fn clean(text: &str) -> String {
    text.chars()
        .filter(|&c| !c.is_control() || matches!(c, '\t' | '\n' | '\r'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{QueueRow, TaskRow};

    fn case(name: &str, status: Status, message: Option<&str>) -> TestCaseRow {
        TestCaseRow {
            id: 1,
            task_id: "q.1".into(),
            name: name.into(),
            status: status.as_str().into(),
            duration_ms: Some(1500),
            message: message.map(str::to_owned),
        }
    }

    fn detail() -> QueueDetail {
        let t = chrono::DateTime::from_timestamp(0, 0)
            .unwrap_or_default()
            .naive_utc();
        let task = |id: &str, scenario: &str, status: Status, reason: Option<&str>| TaskRow {
            id: id.into(),
            queue_id: "q".into(),
            position: 0,
            scenario: scenario.into(),
            status: status.as_str().into(),
            status_reason: reason.map(str::to_owned),
            passed: 0,
            failed: 0,
            skipped: 0,
            started_at: None,
            finished_at: None,
            only_json: None,
        };
        QueueDetail {
            queue: QueueRow {
                seq: 1,
                id: "q".into(),
                status: "failed".into(),
                status_reason: None,
                repo: "r".into(),
                branch: "b".into(),
                commit_sha: None,
                target: "lx106".into(),
                owner: "ann".into(),
                priority: 0,
                timeout_s: None,
                created_at: t,
                started_at: None,
                finished_at: None,
                worker_id: None,
                abort_reason: None,
                pgid: None,
                board: None,
                board_tags: None,
                ran_on: None,
                attempt: 1,
                no_cache: false,
                triggered_by: None,
            },
            tasks: vec![
                (
                    task("q.1", "scenarios/unit.xml", Status::Failed, None),
                    vec![
                        case("unit/a", Status::Passed, None),
                        case(
                            "unit/b",
                            Status::Failed,
                            Some("Expected 42 <Was> 41 \u{1b}[0m & \"x\""),
                        ),
                        case("unit/c", Status::Skipped, None),
                    ],
                ),
                (
                    task(
                        "q.2",
                        "scenarios/smoke.xml",
                        Status::Skipped,
                        Some("not reached"),
                    ),
                    vec![],
                ),
            ],
            attempts: vec![],
        }
    }

    #[test]
    fn counts_and_escapes() {
        let xml = render(&detail());
        assert!(
            xml.contains(r#"<testsuites name="q" tests="4" failures="1" errors="0" skipped="2">"#),
            "{xml}"
        );
        assert!(xml.contains(r#"<testsuite name="scenarios/unit.xml" id="q.1" tests="3" failures="1" errors="0" skipped="1" time="4.500">"#), "{xml}");
        assert!(
            xml.contains(
                r#"<failure message="Expected 42 &lt;Was&gt; 41 [0m &amp; &quot;x&quot;"/>"#
            ),
            "{xml}"
        );
        assert!(
            xml.contains(r#"<testcase name="unit/a" classname="q.1" time="1.500"/>"#),
            "{xml}"
        );
        // A task without results still shows, with its reason.
        assert!(
            xml.contains(r#"<testcase name="scenarios/smoke.xml" classname="q.2" time="0.000">"#),
            "{xml}"
        );
        assert!(xml.contains(r#"<skipped message="not reached"/>"#), "{xml}");
    }

    #[test]
    fn is_well_formed_xml() {
        let xml = render(&detail());
        let mut reader = quick_xml::Reader::from_str(&xml);
        let mut depth = 0i32;
        loop {
            match reader.read_event().unwrap() {
                quick_xml::events::Event::Start(_) => depth += 1,
                quick_xml::events::Event::End(_) => depth -= 1,
                quick_xml::events::Event::Eof => break,
                _ => {}
            }
        }
        assert_eq!(depth, 0);
    }
}
