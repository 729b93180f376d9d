//! `--wait`: follows a queue over its event stream until it ends, printing
//! each test's verdict as it comes. On a terminal a progress line (elapsed
//! time, counts, the worker's latest timeline line) is redrawn below the
//! verdicts; elsewhere every change is a plain line, for CI logs.

use std::collections::HashSet;
use std::io::Write as _;
use std::time::Duration;

use chrono::Utc;
use testarena_wire::api::Queue;
use testarena_wire::status::Status;

use super::{Ctx, Exit, Result, view};
use crate::output;
use crate::sse::{Event, Follower};

/// The worker's timeline: what it does now, for the progress line.
const TIMELINE: &str = "queue.log";
const SPINNER: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/// What has been shown of the queue so far.
#[derive(Debug, Default)]
struct Seen {
    status: Option<Status>,
    tasks: HashSet<String>,
    tests: HashSet<(String, String)>,
    /// The last line of the timeline, for the progress line.
    activity: String,
    /// The attempt last shown (a retry starts the next).
    attempt: Option<i32>,
    /// Whether a progress line is on screen.
    drawn: bool,
    frame: usize,
}

/// Follows `queue` until it ends; the exit is its verdict.
pub fn wait(ctx: &mut Ctx, mut queue: Queue) -> Result<Exit> {
    let mut seen = Seen::default();
    let live = ctx.out.tty && !ctx.out.json;
    if !queue.is_final() {
        let follower = Follower::start(&ctx.client, &queue.id, Some(TIMELINE));
        loop {
            let tick = if live {
                Duration::from_millis(120)
            } else {
                Duration::from_secs(3600)
            };
            let event = match follower.recv(tick) {
                Ok(event) => event,
                Err(e) => {
                    clear(ctx, &mut seen)?;
                    return Err(e.into());
                }
            };
            match event {
                None => {}
                Some(Event::Status(q)) => {
                    queue = *q;
                    show_changes(ctx, &queue, &mut seen)?;
                }
                Some(Event::Log(chunk)) => {
                    if let Some(line) = chunk.text.lines().rev().find(|l| !l.trim().is_empty()) {
                        seen.activity = without_time(line).to_owned();
                    }
                }
                Some(Event::End(Some(q))) => {
                    queue = *q;
                    break;
                }
                Some(Event::End(None)) => {
                    clear(ctx, &mut seen)?;
                    eprintln!("queue {} was deleted before it ended", queue.id);
                    return Ok(Exit::Aborted);
                }
            }
            if live {
                draw(ctx, &queue, &mut seen)?;
            }
        }
    }
    show_changes(ctx, &queue, &mut seen)?;
    clear(ctx, &mut seen)?;
    if ctx.out.json {
        ctx.out.json_value(&queue)?;
    } else {
        view::summary(&mut ctx.out, &queue)?;
    }
    Ok(Exit::of(queue.status))
}

/// Prints what is new: the queue's status, finished tests and tasks.
fn show_changes(ctx: &mut Ctx, q: &Queue, seen: &mut Seen) -> Result<()> {
    if ctx.out.json {
        return Ok(());
    }
    let mut lines = Vec::new();
    if seen.attempt.is_some_and(|a| a != q.attempt) {
        // A farm failure was retried: the next attempt's results are new.
        seen.tasks.clear();
        seen.tests.clear();
        let why = q.status_reason.as_deref().unwrap_or("retrying");
        lines.push(format!("queue {} attempt {}: {why}", q.id, q.attempt));
    }
    seen.attempt = Some(q.attempt);
    if seen.status != Some(q.status) {
        seen.status = Some(q.status);
        if !ctx.out.tty && !q.is_final() {
            let mut line = format!("queue {} {}", q.id, view::queue_status(q));
            if let Some(w) = q.worker.as_deref().filter(|_| q.status == Status::Running) {
                line.push_str(&format!(" on {w}"));
            }
            lines.push(line);
        }
    }
    for task in &q.tasks {
        for test in &task.tests {
            let key = (task.id.clone(), test.name.clone());
            if test.status.is_final() && seen.tests.insert(key) {
                lines.push(view::verdict_line(&ctx.out, q, task, test));
            }
        }
        if task.status.is_final() && seen.tasks.insert(task.id.clone()) {
            let reason = task
                .status_reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default();
            let line = format!(
                "task {} {} {}{reason}: {} passed, {} failed, {} skipped",
                task.id, task.scenario, task.status, task.passed, task.failed, task.skipped
            );
            lines.push(ctx.out.dim(&line));
        }
    }
    if !lines.is_empty() {
        clear(ctx, seen)?;
        for line in lines {
            writeln!(ctx.out, "{line}")?;
        }
        ctx.out.flush()?;
    }
    Ok(())
}

/// Redraws the progress line in place, cut to the terminal's width.
fn draw(ctx: &mut Ctx, q: &Queue, seen: &mut Seen) -> Result<()> {
    let width = terminal_size::terminal_size().map_or(80, |(w, _)| usize::from(w.0));
    seen.frame = seen.frame.wrapping_add(1);
    let spinner = SPINNER[seen.frame % SPINNER.len()];
    let elapsed = q.started_at.map_or(String::new(), |t| {
        format!(
            " {}",
            output::duration_ms((Utc::now() - t).num_milliseconds())
        )
    });
    let (passed, failed) = q
        .tasks
        .iter()
        .fold((0, 0), |(p, f), t| (p + t.passed, f + t.failed));
    // The queue's id is on the line above: task ids shrink to `#n`.
    let activity = seen.activity.replace(&format!("{}.", q.id), "#");
    let plain = format!(
        "{spinner} {}{elapsed} · {passed} passed · {failed} failed · {activity}",
        view::queue_status(q),
    );
    let line = output::fit(&plain, width.saturating_sub(1));
    write!(ctx.out, "\r\x1b[2K{}", ctx.out.paint("36", &line))?;
    ctx.out.flush()?;
    seen.drawn = true;
    Ok(())
}

/// A timeline line without its leading RFC 3339 time.
fn without_time(line: &str) -> &str {
    let line = line.trim();
    match line.split_once(' ') {
        Some((time, rest)) if chrono::DateTime::parse_from_rfc3339(time).is_ok() => rest,
        _ => line,
    }
}

/// Erases the progress line, if one is drawn.
fn clear(ctx: &mut Ctx, seen: &mut Seen) -> Result<()> {
    if seen.drawn {
        write!(ctx.out, "\r\x1b[2K")?;
        ctx.out.flush()?;
        seen.drawn = false;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeline_lines_lose_their_time() {
        assert_eq!(
            without_time("2026-11-21T23:18:18.815Z build started"),
            "build started"
        );
        assert_eq!(without_time("  no time here "), "no time here");
    }
}
