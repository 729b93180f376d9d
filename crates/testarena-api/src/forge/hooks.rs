//! A forge's webhook, received (`POST /api/v1/hooks/{repo}`): checked by its
//! signature only, then a push is turned into queues pinned to the pushed
//! commit, as the commit's `.testarena.toml` asks, owned by the farm's own
//! user with the pusher as `triggered_by`.
//!
//! Nothing is stored until everything has been checked: a missing or wrong
//! signature (401), a malformed body (400) or a body over the limit (413)
//! change nothing. The hook's record and its queues are written in one
//! transaction, under the forge's delivery id: a redelivery answers the
//! first delivery's queues and makes none. A bad `.testarena.toml`, or a
//! scenario it names that does not parse, starts nothing; the record says
//! why and an `error` status goes to the commit.

use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use serde_json::Value;
use testarena_domain::api::{CreateQueue, HookReceipt, ScenarioEntry};
use testarena_domain::config::{Config, Forge, RepoConfig, secret_from_env};
use testarena_domain::git::{GitError, Mirror};
use testarena_domain::repo_config::{self, RepoConfig as PushConfig};
use testarena_domain::store::{self, deliveries};
use testarena_domain::validate::{self, SYSTEM_USER};

use super::outgoing;
use super::push::{self, EventKind, Push};
use super::signature;
use crate::error::ApiError;
use crate::state::{AppState, blocking};
use crate::submit::{self, Checked, Fetcher};

/// How often a push whose generated queue ids collide draws new ones.
const ID_ATTEMPTS: u32 = 5;

/// What a hook comes to before anything is stored.
struct Plan {
    outcome: &'static str,
    reason: Option<String>,
    branch: Option<String>,
    commit: Option<String>,
    pusher: Option<String>,
    made: Vec<Checked>,
    to_send: Vec<deliveries::NewDelivery>,
}

impl Plan {
    fn ignored(reason: impl Into<String>) -> Self {
        Self {
            outcome: "ignored",
            reason: Some(reason.into()),
            branch: None,
            commit: None,
            pusher: None,
            made: Vec::new(),
            to_send: Vec::new(),
        }
    }

    fn of_push(mut self, push: &Push) -> Self {
        self.branch = push
            .branch()
            .map(str::to_owned)
            .or(Some(push.git_ref.clone()));
        self.commit = Some(push.after.clone());
        self.pusher.clone_from(&push.pusher);
        self
    }
}

fn refused() -> ApiError {
    ApiError::Unauthorized("no webhook is configured for this repository".into())
}

/// The answer's HTTP status: 202 for an event TestArena does not handle,
/// else 200.
fn answer_status(forge: Option<Forge>, event: &str, outcome: &str) -> StatusCode {
    let other = forge.is_some_and(|f| push::event_kind(f, event) == EventKind::Other);
    if outcome == "ignored" && other {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    }
}

fn receipt(row: &deliveries::HookRow, redelivery: bool) -> (StatusCode, HookReceipt) {
    let status = answer_status(row.forge.parse().ok(), &row.event, &row.outcome);
    (
        status,
        HookReceipt {
            delivery: row.delivery_id.clone(),
            event: row.event.clone(),
            outcome: row.outcome.clone(),
            reason: row.reason.clone(),
            queues: row.queue_ids(),
            redelivery,
        },
    )
}

/// Receives one webhook of repository `repo_name`; `header` reads the
/// request's headers by name.
pub async fn receive(
    state: &AppState,
    repo_name: &str,
    header: impl Fn(&str) -> Option<String>,
    body: Bytes,
) -> Result<(StatusCode, HookReceipt), ApiError> {
    let arrived = Instant::now();
    let config = state.config.clone();
    let repo = validate::is_valid_name(repo_name)
        .then(|| config.repo(Some(repo_name)))
        .flatten()
        .cloned()
        .ok_or_else(refused)?;
    let (Some(forge), Some(env)) = (repo.forge, repo.webhook_secret_env.as_deref()) else {
        return Err(refused());
    };
    let Some(secret) = secret_from_env(env) else {
        tracing::warn!(repo = %repo.name, env, "webhook refused: its secret's environment variable is not set");
        return Err(refused());
    };
    let given = header(signature::header(forge));
    signature::verify(forge, given.as_deref(), secret.expose().as_bytes(), &body)
        .map_err(ApiError::Unauthorized)?;
    let (event_header, delivery_header) = push::headers(forge);
    let event = header(event_header)
        .map(|e| e.trim().to_owned())
        .filter(|e| !e.is_empty() && e.len() <= 100)
        .ok_or_else(|| ApiError::BadRequest(format!("no {event_header} header")))?;
    let delivery = push::delivery_id(header(delivery_header).as_deref(), &body)
        .map_err(ApiError::BadRequest)?;
    let json: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?;
    let first = {
        let (name, id) = (repo.name.clone(), delivery.clone());
        state
            .db(move |conn| Ok(deliveries::find_hook(conn, &name, &id)?))
            .await?
    };
    if let Some(row) = first {
        tracing::info!(repo = %repo.name, delivery, "hook redelivered: nothing new");
        return Ok(receipt(&row, true));
    }
    let plan = match push::event_kind(forge, &event) {
        EventKind::Ping => Plan::ignored("ping"),
        EventKind::TagPush => Plan::ignored("a tag push starts nothing"),
        EventKind::Other => Plan::ignored(format!("event {event:?} starts nothing")),
        EventKind::Push => {
            let push = push::parse(forge, &json).map_err(ApiError::BadRequest)?;
            let (config, fetcher, repo) = (config.clone(), state.fetcher.clone(), repo.clone());
            blocking(
                move || Ok(plan_push(&config, &fetcher, &repo, &push, arrived)?.of_push(&push)),
            )
            .await?
        }
    };
    let hook = deliveries::NewHook {
        repo: repo.name.clone(),
        delivery_id: delivery.clone(),
        forge: forge.as_str().into(),
        event,
        branch: plan.branch.clone(),
        commit_sha: plan.commit.clone(),
        pusher: plan.pusher.clone(),
        outcome: plan.outcome.into(),
        reason: plan.reason.clone(),
        received_at: store::now(),
    };
    let answer = record(state, hook, plan).await?;
    tracing::info!(
        repo = %repo.name, delivery, outcome = %answer.1.outcome,
        reason = answer.1.reason.as_deref().unwrap_or(""), queues = ?answer.1.queues,
        "hook received"
    );
    Ok(answer)
}

/// Stores the hook with its queues (their folders first, as a submission
/// does), drawing new queue ids on a collision; a concurrent delivery of
/// the same id that won answers as a redelivery.
async fn record(
    state: &AppState,
    hook: deliveries::NewHook,
    mut plan: Plan,
) -> Result<(StatusCode, HookReceipt), ApiError> {
    let mut attempts = ID_ATTEMPTS;
    loop {
        attempts -= 1;
        let dirs: Vec<_> = plan
            .made
            .iter()
            .map(|c| state.home.queue_dir(&c.queue.id))
            .collect();
        let made_dirs = blocking({
            let dirs = dirs.clone();
            move || {
                for dir in &dirs {
                    std::fs::create_dir_all(dir).map_err(|e| ApiError::io(dir.display(), &e))?;
                }
                Ok(())
            }
        })
        .await;
        let stored = match made_dirs {
            Ok(()) => {
                let (hook, to_send, pusher) =
                    (hook.clone(), plan.to_send.clone(), plan.pusher.clone());
                let made: Vec<_> = plan
                    .made
                    .iter()
                    .map(|c| (c.queue.clone(), c.tasks.clone()))
                    .collect();
                state
                    .db(move |conn| {
                        Ok(deliveries::record_hook(
                            conn,
                            &hook,
                            &made,
                            pusher.as_deref(),
                            &to_send,
                        )?)
                    })
                    .await
            }
            Err(e) => Err(e),
        };
        match stored {
            Ok((row, queues)) => {
                for _ in &queues {
                    state.metrics.queue_submitted();
                }
                return Ok(receipt(&row, false));
            }
            Err(e) => {
                let _ = blocking(move || {
                    for dir in &dirs {
                        let _ = std::fs::remove_dir(dir);
                    }
                    Ok(())
                })
                .await;
                let ApiError::Conflict(_) = e else {
                    return Err(e);
                };
                let (name, id) = (hook.repo.clone(), hook.delivery_id.clone());
                let first = state
                    .db(move |conn| Ok(deliveries::find_hook(conn, &name, &id)?))
                    .await?;
                if let Some(row) = first {
                    return Ok(receipt(&row, true));
                }
                if attempts == 0 {
                    return Err(e);
                }
                plan.made = plan.made.into_iter().map(Checked::renamed).collect();
            }
        }
    }
}

/// An `error` plan: nothing starts; the commit gets an `error` status.
fn failed(config: &Config, repo: &RepoConfig, sha: &str, reason: String) -> Plan {
    Plan {
        outcome: "error",
        to_send: outgoing::push_error(config, repo, sha, &reason)
            .into_iter()
            .collect(),
        reason: Some(reason),
        ..Plan::ignored("")
    }
}

/// "field: message" of a validation error, as a reason.
fn reason_of(e: &ApiError, entry: usize) -> Option<String> {
    match e {
        ApiError::Validation { message, field } => {
            let field = field.as_deref().unwrap_or("");
            Some(if message.starts_with(field) {
                format!("push[{entry}]: {message}")
            } else {
                format!("push[{entry}]: {field}: {message}")
            })
        }
        _ => None,
    }
}

/// What a push asks for: fetch the mirror, read `.testarena.toml` at the
/// pushed commit, and check one submission per matching `[[push]]` entry
/// exactly as `POST /api/v1/queues` would. Blocking (git2).
fn plan_push(
    config: &Config,
    fetcher: &Fetcher,
    repo: &RepoConfig,
    push: &Push,
    arrived: Instant,
) -> Result<Plan, ApiError> {
    if push.is_tag() {
        return Ok(Plan::ignored("a tag push starts nothing"));
    }
    let Some(branch) = push.branch() else {
        return Ok(Plan::ignored(format!("{} is not a branch", push.git_ref)));
    };
    if push.is_deletion() {
        return Ok(Plan::ignored(format!("branch {branch:?} was deleted")));
    }
    if let Err(e) = validate::branch("branch", branch) {
        return Ok(Plan::ignored(format!("branch name refused: {e}")));
    }
    let sha = push.after.as_str();
    let mirror = Mirror::new(&config.home.join("cache").join("git"), repo);
    fetcher.fetch(&mirror, &repo.name, arrived)?;
    let bytes = match mirror.read_file(sha, repo_config::FILE, repo_config::MAX_BYTES as usize) {
        Ok(bytes) => bytes,
        Err(GitError::FileNotFound { .. }) => {
            return Ok(Plan::ignored(format!(
                "no {} at commit {}",
                repo_config::FILE,
                &sha[..12]
            )));
        }
        Err(e @ (GitError::NotAFile { .. } | GitError::TooLarge { .. })) => {
            return Ok(failed(
                config,
                repo,
                sha,
                format!("{}: {e}", repo_config::FILE),
            ));
        }
        Err(GitError::CommitNotFound { .. }) => {
            return Ok(failed(
                config,
                repo,
                sha,
                format!("commit {sha} is not in {} after a fetch", repo.name),
            ));
        }
        Err(other) => return Err(ApiError::Unavailable(other.to_string())),
    };
    let asks = match PushConfig::parse(&bytes) {
        Ok(asks) => asks,
        Err(e) => return Ok(failed(config, repo, sha, e.to_string())),
    };
    let entries: Vec<_> = asks.matching(branch).collect();
    if entries.is_empty() {
        return Ok(Plan::ignored(format!(
            "no [[push]] entry of {} matches branch {branch:?}",
            repo_config::FILE
        )));
    }
    let mut made = Vec::with_capacity(entries.len());
    for entry in entries {
        let req = CreateQueue {
            branch: branch.to_owned(),
            commit: Some(sha.to_owned()),
            scenarios: Some(
                entry
                    .scenarios
                    .iter()
                    .cloned()
                    .map(ScenarioEntry::Path)
                    .collect(),
            ),
            repo: Some(repo.name.clone()),
            target: entry.target.clone(),
            priority: entry.priority,
            board: entry.board.clone(),
            ..CreateQueue::default()
        };
        let checked = submit::check_fields(config, &req, SYSTEM_USER).and_then(|mut checked| {
            submit::check_repository(config, fetcher, &mut checked, arrived)?;
            Ok(checked)
        });
        match checked {
            Ok(checked) => made.push(checked),
            Err(e) => match reason_of(&e, entry.index) {
                Some(reason) => {
                    return Ok(failed(
                        config,
                        repo,
                        sha,
                        format!("{}: {reason}", repo_config::FILE),
                    ));
                }
                None => return Err(e),
            },
        }
    }
    Ok(Plan {
        outcome: "started",
        reason: None,
        made,
        ..Plan::ignored("")
    })
}
