//! The history service (DESIGN section 11): a test's runs, the tests
//! list, a queue compared with a base, and reruns with options. The
//! history routes and the queue routes call these; they reach into no
//! route module.

use chrono::{Duration, NaiveDateTime};
use testarena_domain::api::{
    Comparison, CreateQueue, MAX_RERUN_COUNT, Page, Queue, Rerun, RerunRequest, ScenarioEntry,
    ScenarioSubset, TestRun, TestSummary,
};
use testarena_domain::status::Status;
use testarena_domain::store::{self, HistoryFilter, TestsFilter};

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::queues;
use crate::state::AppState;
use crate::subsets::entry_of;

/// A page of a test's runs.
pub async fn history(state: &AppState, filter: HistoryFilter) -> Result<Page<TestRun>, ApiError> {
    state
        .db(move |conn| {
            let page = store::test_history(conn, &filter)?;
            Ok(Page {
                items: page.items,
                next: page.next.map(|n| n.to_string()),
            })
        })
        .await
}

/// The default window of the tests list: the flaky rule's 30 days.
pub fn default_since() -> NaiveDateTime {
    store::now() - Duration::days(store::FLAKY_WINDOW_DAYS)
}

/// A page of the tests list.
pub async fn tests(state: &AppState, filter: TestsFilter) -> Result<Page<TestSummary>, ApiError> {
    state
        .db(move |conn| {
            let page = store::snapshot(conn, |conn| store::list_tests(conn, &filter))?;
            Ok(Page {
                items: page.items,
                next: page.next.map(|n| n.to_string()),
            })
        })
        .await
}

/// A queue compared with `with`, or by default with the newest earlier
/// queue of its repository, branch and target that ran to a verdict.
pub async fn compare(
    state: &AppState,
    id: &str,
    with: Option<String>,
) -> Result<Comparison, ApiError> {
    let id = queues::checked_id(id)?.to_owned();
    if let Some(w) = &with {
        queues::checked_id(w).map_err(|_| ApiError::validation("with", "no such queue"))?;
    }
    state
        .db(move |conn| {
            store::snapshot(conn, |conn| {
                let now = store::queue_detail(conn, &id)?;
                let Some(now) = now else {
                    return Ok(Err(ApiError::NotFound(format!("no queue {id:?}"))));
                };
                let base_id = match with {
                    Some(w) => Some(w),
                    None => store::compare_base(conn, &now.queue)?,
                };
                let base = match base_id {
                    Some(b) => match store::queue_detail(conn, &b)? {
                        Some(d) => Some(d),
                        None => {
                            return Ok(Err(ApiError::validation(
                                "with",
                                format!("no queue {b:?}"),
                            )));
                        }
                    },
                    None => None,
                };
                let facts = store::case_facts(conn, &now)?;
                Ok(Ok(store::compare_queues(&now, &facts, base.as_ref())))
            })?
        })
        .await
}

/// Reruns with options: `count` queues (1 to 20) of the same scenarios,
/// at the same commit unless `same_commit` is false, and with
/// `failed_only` only the tasks that did not pass and, in each, only its
/// tests that did not pass. The owner or an admin.
pub async fn rerun(
    state: &AppState,
    user: &AuthUser,
    id: &str,
    opts: RerunRequest,
) -> Result<Rerun, ApiError> {
    let count = opts.count.unwrap_or(1);
    if !(1..=MAX_RERUN_COUNT).contains(&count) {
        return Err(ApiError::validation(
            "count",
            format!("must be between 1 and {MAX_RERUN_COUNT}"),
        ));
    }
    let old = queues::load(state, id).await?;
    user.may_change(&old.owner)?;
    let scenarios = if opts.failed_only {
        let entries = failed_entries(&old);
        if entries.is_empty() {
            return Err(ApiError::validation(
                "failed_only",
                format!("every task of queue {:?} passed: nothing to rerun", old.id),
            ));
        }
        entries
    } else {
        old.tasks.iter().map(entry_of).collect()
    };
    let req = CreateQueue {
        branch: old.branch.clone(),
        commit: if opts.same_commit {
            old.commit.clone()
        } else {
            None
        },
        scenarios: Some(scenarios),
        repo: Some(old.repo.clone()),
        target: Some(old.target.clone()),
        priority: Some(old.priority),
        timeout_s: old.timeout_s,
        board: old.board.clone(),
        board_tags: (!old.board_tags.is_empty()).then(|| old.board_tags.clone()),
        ..CreateQueue::default()
    };
    let mut made = Vec::new();
    for _ in 0..count {
        made.push(queues::submit(state, user, &req).await?);
    }
    Ok(match (opts.count, made.pop()) {
        (None, Some(queue)) => Rerun::One(Box::new(queue)),
        (_, last) => {
            made.extend(last);
            Rerun::Many(made)
        }
    })
}

/// The tasks that did not pass, each with only its `<test>`s that did not
/// pass (a Unity case `unit/test_x` names its test `unit`); a task that
/// recorded no failing test (it errored before its tests, or was not
/// reached) runs as it ran.
fn failed_entries(queue: &Queue) -> Vec<ScenarioEntry> {
    queue
        .tasks
        .iter()
        .filter(|t| t.status != Status::Passed)
        .map(|task| {
            let mut names: Vec<String> = Vec::new();
            for test in &task.tests {
                if matches!(test.status, Status::Failed | Status::Error) {
                    let name = test.name.split('/').next().unwrap_or(&test.name).to_owned();
                    if !names.contains(&name) {
                        names.push(name);
                    }
                }
            }
            if names.is_empty() {
                entry_of(task)
            } else {
                ScenarioEntry::Subset(ScenarioSubset {
                    path: task.scenario.clone(),
                    only: names,
                })
            }
        })
        .collect()
}

/// A rerun's optional body: `None` when empty (the answer is then one
/// queue, as before rerun took options); malformed JSON or unknown fields
/// are 400.
pub fn rerun_options(body: &[u8]) -> Result<Option<RerunRequest>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(body)
        .map(Some)
        .map_err(|e| ApiError::BadRequest(format!("rerun options: {e}")))
}
