//! The deliveries a change calls for: commit statuses on the forge of a
//! queue's repository and `[[notify]]` webhooks, each as a row to send
//! (target, JSON body, which secret), built here from the config and the
//! queue as it is when the change is expanded.
//!
//! Statuses: `pending` when a queue is claimed, then `success` (passed),
//! `failure` (failed) or `error` (error, aborted) when it ends, on the
//! context `testarena` for the queue and `testarena/<scenario>` for each
//! task, with the counts as the description and a link to the queue's
//! page. Gitea and GitHub take `{"state", "target_url", "description",
//! "context"}`; GitLab `{"state", "name", "target_url", "description"}`
//! with its own state names (`failed`, `canceled`).

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};
use testarena_domain::api::Queue;
use testarena_domain::config::{Config, Forge, NotifyEvent, RepoConfig, public_url};
use testarena_domain::models::{QueueDetail, TaskRow};
use testarena_domain::status::Status;
use testarena_domain::store::deliveries::NewDelivery;

/// The queue's own context; each task's is `testarena/<scenario>`.
pub const CONTEXT: &str = "testarena";
/// GitHub refuses a longer description.
const MAX_DESCRIPTION: usize = 140;

/// GitLab's project path in a URL: every `/` (and anything else not
/// alphanumeric but `-`, `.`, `_`) percent-encoded.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_');

/// A status's state as the contract names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Pending,
    Success,
    Failure,
    Error,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Error => "error",
        }
    }

    /// The state of a queue or task that is in `status`.
    fn of(status: Status) -> Self {
        match status {
            Status::Waiting | Status::Running => Self::Pending,
            Status::Passed => Self::Success,
            Status::Failed => Self::Failure,
            _ => Self::Error,
        }
    }

    /// The state in the forge's words.
    fn on(self, forge: Forge, status: Status) -> &'static str {
        match (forge, self) {
            (Forge::Gitlab, Self::Failure) => "failed",
            (Forge::Gitlab, Self::Error) if status == Status::Aborted => "canceled",
            (Forge::Gitlab, Self::Error) => "failed",
            (_, s) => s.as_str(),
        }
    }
}

/// The forge keys a repository needs for statuses, when it has them all.
struct StatusTarget<'a> {
    forge: Forge,
    api: &'a str,
    path: &'a str,
    token_env: &'a str,
}

fn status_target(repo: &RepoConfig) -> Option<StatusTarget<'_>> {
    Some(StatusTarget {
        forge: repo.forge?,
        api: repo.forge_api.as_deref()?.trim_end_matches('/'),
        path: repo.forge_repo.as_deref()?,
        token_env: repo.status_token_env.as_deref()?,
    })
}

/// Where a commit's statuses are POSTed on each forge.
pub fn status_url(forge: Forge, api: &str, path: &str, sha: &str) -> String {
    let api = api.trim_end_matches('/');
    match forge {
        Forge::Gitea | Forge::Github => format!("{api}/repos/{path}/statuses/{sha}"),
        Forge::Gitlab => format!(
            "{api}/projects/{}/statuses/{sha}",
            utf8_percent_encode(path, PATH_SEGMENT)
        ),
    }
}

/// A queue's page on the dashboard, when `public_url` is set.
pub fn queue_link(config: &Config, queue_id: &str) -> Option<String> {
    public_url(config).map(|base| format!("{base}/#/queues/{queue_id}"))
}

fn status_body(
    forge: Forge,
    state: State,
    status: Status,
    context: &str,
    description: &str,
    link: Option<&str>,
) -> Value {
    let description: String = description.chars().take(MAX_DESCRIPTION).collect();
    let mut body = match forge {
        Forge::Gitlab => json!({
            "state": state.on(forge, status), "name": context, "description": description,
        }),
        _ => json!({
            "state": state.on(forge, status), "context": context, "description": description,
        }),
    };
    if let (Some(link), Some(map)) = (link, body.as_object_mut()) {
        map.insert("target_url".into(), Value::String(link.to_owned()));
    }
    body
}

/// `9 passed, 1 failed` (and `, 2 skipped` when some were), from counts.
pub fn counts(passed: i32, failed: i32, skipped: i32) -> String {
    let mut text = format!("{passed} passed, {failed} failed");
    if skipped > 0 {
        text.push_str(&format!(", {skipped} skipped"));
    }
    text
}

fn describe(
    state: State,
    status: Status,
    counted: String,
    reason: Option<&str>,
    worker: Option<&str>,
) -> String {
    match state {
        State::Pending => match worker {
            Some(w) => format!("running on {w}"),
            None => "running".to_owned(),
        },
        State::Success => counted,
        _ => match reason {
            Some(r) if !r.is_empty() => format!("{counted}: {status}: {r}"),
            _ => format!("{counted}: {status}"),
        },
    }
}

fn one_status(
    target: &StatusTarget<'_>,
    queue_id: Option<&str>,
    sha: &str,
    state: State,
    context: &str,
    body: Value,
) -> NewDelivery {
    NewDelivery {
        kind: "status".into(),
        event: state.as_str().into(),
        queue_id: queue_id.map(str::to_owned),
        forge: Some(target.forge.as_str().into()),
        auth_env: Some(target.token_env.to_owned()),
        context: Some(context.to_owned()),
        target_url: status_url(target.forge, target.api, target.path, sha),
        payload: body.to_string(),
    }
}

/// Each task's context: `testarena/<scenario>`, and, when two tasks run
/// the same scenario, ` (<task id>)` after the later ones.
fn task_contexts(tasks: &[&TaskRow]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    tasks
        .iter()
        .map(|t| {
            let base = format!("{CONTEXT}/{}", t.scenario);
            if seen.insert(base.clone()) {
                base
            } else {
                format!("{base} ({})", t.id)
            }
        })
        .collect()
}

/// The statuses a queue's move to `status` calls for: none unless the
/// queue has a commit and its repository has a status token.
pub fn statuses(config: &Config, detail: &QueueDetail, status: Status) -> Vec<NewDelivery> {
    let q = &detail.queue;
    let (Some(repo), Some(sha)) = (config.repo(Some(&q.repo)), q.commit_sha.as_deref()) else {
        return Vec::new();
    };
    let Some(target) = status_target(repo) else {
        return Vec::new();
    };
    let state = State::of(status);
    let link = queue_link(config, &q.id);
    let tasks: Vec<&TaskRow> = detail.tasks.iter().map(|(t, _)| t).collect();
    let (p, f, s) = tasks.iter().fold((0, 0, 0), |(p, f, s), t| {
        (p + t.passed, f + t.failed, s + t.skipped)
    });
    let worker = q.worker_id.as_deref();
    let reason = q.status_reason.as_deref();
    let mut out = vec![one_status(
        &target,
        Some(&q.id),
        sha,
        state,
        CONTEXT,
        status_body(
            target.forge,
            state,
            status,
            CONTEXT,
            &describe(state, status, counts(p, f, s), reason, worker),
            link.as_deref(),
        ),
    )];
    for (task, context) in tasks.iter().zip(task_contexts(&tasks)) {
        // A task the queue's end left behind takes the queue's verdict.
        let task_status = if state == State::Pending {
            Status::Running
        } else {
            match task.status() {
                Status::Skipped | Status::Waiting | Status::Running => status,
                other => other,
            }
        };
        let task_state = State::of(task_status);
        let counted = counts(task.passed, task.failed, task.skipped);
        let task_reason = task.status_reason.as_deref().or(reason);
        out.push(one_status(
            &target,
            Some(&q.id),
            sha,
            task_state,
            &context,
            status_body(
                target.forge,
                task_state,
                task_status,
                &context,
                &describe(task_state, task_status, counted, task_reason, worker),
                link.as_deref(),
            ),
        ));
    }
    out
}

/// The `error` status of a push that started nothing because its
/// `.testarena.toml` (or a scenario it names) is bad, on the `testarena`
/// context; `None` without a status token.
pub fn push_error(
    config: &Config,
    repo: &RepoConfig,
    sha: &str,
    reason: &str,
) -> Option<NewDelivery> {
    let target = status_target(repo)?;
    let body = status_body(
        target.forge,
        State::Error,
        Status::Error,
        CONTEXT,
        reason,
        public_url(config),
    );
    Some(one_status(&target, None, sha, State::Error, CONTEXT, body))
}

fn notifications(
    config: &Config,
    event: NotifyEvent,
    queue_id: Option<&str>,
    body: &Value,
) -> Vec<NewDelivery> {
    config
        .notify
        .iter()
        .filter(|n| n.events.contains(&event))
        .map(|n| NewDelivery {
            kind: "notify".into(),
            event: event.as_str().into(),
            queue_id: queue_id.map(str::to_owned),
            forge: None,
            auth_env: n.secret_env.clone(),
            context: None,
            target_url: n.url.clone(),
            payload: body.to_string(),
        })
        .collect()
}

/// Everything a queue's move to `status` calls for: its statuses, and the
/// `queue.started` (claimed) or `queue.finished` (final) notifications with
/// `{"event", "queue", "url"?}`.
pub fn for_queue(config: &Config, detail: &QueueDetail, status: Status) -> Vec<NewDelivery> {
    let mut out = statuses(config, detail, status);
    let event = match status {
        Status::Running => NotifyEvent::QueueStarted,
        s if s.is_final() => NotifyEvent::QueueFinished,
        _ => return out,
    };
    let mut body = json!({"event": event.as_str(), "queue": Queue::from(detail)});
    if let (Some(link), Some(map)) = (queue_link(config, &detail.queue.id), body.as_object_mut()) {
        map.insert("url".into(), Value::String(link));
    }
    out.extend(notifications(config, event, Some(&detail.queue.id), &body));
    out
}

/// The `board.bad` notifications: `{"event", "board": {"id", "reason"}}`.
pub fn for_board_bad(config: &Config, board_id: &str, reason: &str) -> Vec<NewDelivery> {
    let body = json!({"event": "board.bad", "board": {"id": board_id, "reason": reason}});
    notifications(config, NotifyEvent::BoardBad, None, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_forge_has_its_status_url() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(
            status_url(
                Forge::Gitea,
                "https://gitea.internal/api/v1/",
                "team/fw",
                sha
            ),
            format!("https://gitea.internal/api/v1/repos/team/fw/statuses/{sha}")
        );
        assert_eq!(
            status_url(Forge::Github, "https://api.github.com", "team/fw", sha),
            format!("https://api.github.com/repos/team/fw/statuses/{sha}")
        );
        assert_eq!(
            status_url(
                Forge::Gitlab,
                "https://gitlab.internal/api/v4",
                "grp/sub/fw.x",
                sha
            ),
            format!("https://gitlab.internal/api/v4/projects/grp%2Fsub%2Ffw.x/statuses/{sha}")
        );
    }

    #[test]
    fn bodies_follow_each_forge() {
        let gh = status_body(
            Forge::Github,
            State::Failure,
            Status::Failed,
            "testarena",
            "1 passed, 1 failed",
            Some("https://t/#/queues/q"),
        );
        assert_eq!(
            gh,
            json!({"state": "failure", "context": "testarena", "description": "1 passed, 1 failed",
                   "target_url": "https://t/#/queues/q"})
        );
        let gl = status_body(
            Forge::Gitlab,
            State::Error,
            Status::Aborted,
            "testarena",
            "x",
            None,
        );
        assert_eq!(
            gl,
            json!({"state": "canceled", "name": "testarena", "description": "x"})
        );
        let gl = status_body(
            Forge::Gitlab,
            State::Failure,
            Status::Failed,
            "testarena",
            "x",
            None,
        );
        assert_eq!(gl["state"], "failed");
        let long = status_body(
            Forge::Gitea,
            State::Error,
            Status::Error,
            "c",
            &"é".repeat(300),
            None,
        );
        assert_eq!(
            long["description"].as_str().unwrap().chars().count(),
            MAX_DESCRIPTION
        );
    }

    #[test]
    fn a_bad_board_is_told_to_the_notifications_that_ask() {
        let mut config = Config::default();
        for (url, events) in [
            ("https://a.example/x", vec![NotifyEvent::BoardBad]),
            ("https://b.example/y", vec![NotifyEvent::QueueFinished]),
        ] {
            config.notify.push(testarena_domain::config::NotifyConfig {
                url: url.into(),
                events,
                secret_env: Some("S".into()),
            });
        }
        let sent = for_board_bad(&config, "bench-1", "health check q failed");
        assert_eq!(sent.len(), 1);
        assert_eq!(
            (sent[0].kind.as_str(), sent[0].event.as_str()),
            ("notify", "board.bad")
        );
        assert_eq!(sent[0].target_url, "https://a.example/x");
        assert_eq!(sent[0].auth_env.as_deref(), Some("S"));
        let body: Value = serde_json::from_str(&sent[0].payload).unwrap_or_default();
        assert_eq!(
            body,
            json!({"event": "board.bad", "board": {"id": "bench-1", "reason": "health check q failed"}})
        );
    }

    #[test]
    fn descriptions_count() {
        assert_eq!(counts(9, 1, 0), "9 passed, 1 failed");
        assert_eq!(counts(1, 0, 2), "1 passed, 0 failed, 2 skipped");
        assert_eq!(
            describe(
                State::Error,
                Status::Error,
                counts(0, 0, 0),
                Some("worker lost"),
                None
            ),
            "0 passed, 0 failed: error: worker lost"
        );
        assert_eq!(
            describe(
                State::Pending,
                Status::Running,
                String::new(),
                None,
                Some("w1")
            ),
            "running on w1"
        );
    }
}
