//! How queues, tasks and test results look in a terminal.

use std::io::Write as _;

use testarena_wire::api::{Queue, Task, TestResult};
use testarena_wire::status::Status;

use super::Result;
use crate::output::{self, Out, Table, status_color};

/// The status word, with the place in line for a waiting queue.
pub fn queue_status(q: &Queue) -> String {
    match q.position {
        Some(p) if q.status == Status::Waiting => format!("waiting #{p}"),
        _ => q.status.as_str().to_owned(),
    }
}

fn totals(q: &Queue) -> (i32, i32, i32) {
    q.tasks.iter().fold((0, 0, 0), |(p, f, s), t| {
        (p + t.passed, f + t.failed, s + t.skipped)
    })
}

/// `4 passed, 1 failed, 1 skipped`.
pub fn counts(q: &Queue) -> String {
    let (p, f, s) = totals(q);
    format!("{p} passed, {f} failed, {s} skipped")
}

/// A commit's first 10 hex digits, as the dashboard shows it.
pub fn short_sha(sha: &str) -> &str {
    sha.get(..10).unwrap_or(sha)
}

/// The queues of a list, one per line.
pub fn queue_table(out: &mut Out, queues: &[Queue]) -> Result<()> {
    let mut t = Table::new(&[
        "ID", "STATUS", "BRANCH", "OWNER", "TARGET", "PASS", "FAIL", "CREATED", "TIME",
    ]);
    for q in queues {
        let (p, f, _) = totals(q);
        t.styled_row(vec![
            (q.id.clone(), ""),
            (queue_status(q), status_color(q.status)),
            (q.branch.clone(), ""),
            (q.owner.clone(), ""),
            (q.target.clone(), ""),
            (p.to_string(), ""),
            (f.to_string(), if f > 0 { "31" } else { "" }),
            (output::time(q.created_at), ""),
            (output::span(q.started_at, q.finished_at), ""),
        ]);
    }
    if t.is_empty() {
        writeln!(out, "no queues")?;
    } else {
        t.print(out)?;
    }
    Ok(())
}

/// One queue in full: its fields, tasks and test results.
pub fn queue_detail(out: &mut Out, q: &Queue) -> Result<()> {
    let status = out.paint(status_color(q.status), &queue_status(q));
    let reason = q
        .status_reason
        .as_deref()
        .map(|r| format!(" ({r})"))
        .unwrap_or_default();
    let field = |out: &Out, name: &str| out.dim(&format!("{name:<9}"));
    writeln!(
        out,
        "{}{}  {status}{reason}",
        field(out, "queue"),
        out.bold(&q.id)
    )?;
    writeln!(out, "{}{} {}", field(out, "branch"), q.repo, q.branch)?;
    // In full: the commit is what a reader copies to reproduce the run.
    let commit = q
        .commit
        .as_deref()
        .unwrap_or("- (the branch's tip when it runs)");
    writeln!(out, "{}{commit}", field(out, "commit"))?;
    let timeout = q.timeout_s.map_or("default".into(), |s| format!("{s}s"));
    writeln!(
        out,
        "{}{}, priority {}, timeout {timeout}",
        field(out, "target"),
        q.target,
        q.priority
    )?;
    let worker = q.worker.as_deref().unwrap_or("-");
    writeln!(out, "{}{}, worker {worker}", field(out, "owner"), q.owner)?;
    writeln!(
        out,
        "{}created {}, started {}, finished {} ({})",
        field(out, "times"),
        output::time(q.created_at),
        output::opt_time(q.started_at),
        output::opt_time(q.finished_at),
        output::span(q.started_at, q.finished_at)
    )?;
    writeln!(out, "{}{}", field(out, "results"), counts(q))?;
    if q.tasks.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    let mut t = Table::new(&[
        "TASK", "SCENARIO", "STATUS", "PASS", "FAIL", "SKIP", "TIME", "REASON",
    ]);
    for task in &q.tasks {
        t.styled_row(vec![
            (task.id.clone(), ""),
            (task.scenario.clone(), ""),
            (task.status.as_str().into(), status_color(task.status)),
            (task.passed.to_string(), ""),
            (task.failed.to_string(), ""),
            (task.skipped.to_string(), ""),
            (output::span(task.started_at, task.finished_at), ""),
            (task.status_reason.clone().unwrap_or_default(), ""),
        ]);
    }
    t.print(out)?;
    let tests: Vec<(&Task, &TestResult)> = q
        .tasks
        .iter()
        .flat_map(|task| task.tests.iter().map(move |test| (task, test)))
        .collect();
    if tests.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    let mut t = Table::new(&["TEST", "STATUS", "TIME", "MESSAGE"]);
    for (task, test) in tests {
        t.styled_row(vec![
            (format!("{}/{}", task.id, test.name), ""),
            (test.status.as_str().into(), status_color(test.status)),
            (
                test.duration_ms
                    .map_or("-".into(), |ms| output::duration_ms(ms.into())),
                "",
            ),
            (test.message.clone().unwrap_or_default(), ""),
        ]);
    }
    t.print(out)?;
    Ok(())
}

/// One verdict as it comes: `failed  unit/test_x  3ms  Expected 42 Was 41`.
pub fn verdict_line(out: &Out, q: &Queue, task: &Task, test: &TestResult) -> String {
    let mut line = format!(
        "{}  {}",
        out.paint(
            status_color(test.status),
            &format!("{:<7}", test.status.as_str())
        ),
        test.name
    );
    if q.tasks.len() > 1 {
        line.push_str(&out.dim(&format!("  [{}]", task.scenario)));
    }
    if let Some(ms) = test.duration_ms {
        line.push_str(&out.dim(&format!("  {}", output::duration_ms(ms.into()))));
    }
    if let Some(message) = test.message.as_deref().filter(|m| !m.is_empty()) {
        line.push_str(&format!("  {message}"));
    }
    line
}

/// The closing lines of a followed queue: verdict, counts, what failed.
pub fn summary(out: &mut Out, q: &Queue) -> Result<()> {
    let reason = q
        .status_reason
        .as_deref()
        .map(|r| format!(" ({r})"))
        .unwrap_or_default();
    writeln!(
        out,
        "queue {} {}{reason}: {} in {}",
        q.id,
        out.status(q.status),
        counts(q),
        output::span(q.started_at, q.finished_at)
    )?;
    let mut failures = Vec::new();
    for task in &q.tasks {
        let bad: Vec<&TestResult> = task
            .tests
            .iter()
            .filter(|t| matches!(t.status, Status::Failed | Status::Error))
            .collect();
        if bad.is_empty() && matches!(task.status, Status::Failed | Status::Error) {
            let reason = task.status_reason.as_deref().unwrap_or("no reason given");
            let what = format!("{} ({})", task.id, task.scenario);
            failures.push((what, task.status, reason, None));
        }
        for test in bad {
            let message = test.message.as_deref().unwrap_or("");
            // A Unity case `unit/NAME` is in the log of the test `unit`.
            let log = test.name.split('/').next().unwrap_or_default();
            let log = format!("{}/{log}", task.id);
            let what = format!("{}/{}", task.id, test.name);
            failures.push((what, test.status, message, Some(log)));
        }
    }
    if failures.is_empty() {
        return Ok(());
    }
    writeln!(out, "failures:")?;
    for (what, status, message, _) in &failures {
        let status = out.status(*status);
        writeln!(out, "  {what} {status}: {message}")?;
    }
    if let Some(log) = failures.iter().find_map(|f| f.3.as_deref()) {
        let hint = format!("log: testarena logs {} --test {log}", q.id);
        writeln!(out, "{}", out.dim(&hint))?;
    }
    Ok(())
}
