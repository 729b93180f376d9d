//! The queue service: submit, store, load, list, abort, delete and rerun,
//! and a queue's JUnit document. The queue routes, the compatibility routes
//! and the log routes are thin handlers over these functions; none of them
//! reaches into another route module.

use std::time::Instant;

use testarena_domain::api::{self, CreateQueue, Page, Queue, Task};
use testarena_domain::junit;
use testarena_domain::models::{QueueDetail, QueueRow};
use testarena_domain::status::Status;
use testarena_domain::store::{self, AbortOutcome, Actor, QueueFilter};

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::logs::source::{JUNIT, LogSource};
use crate::state::{AppState, blocking};
use crate::submit;

/// Refuses ids that could never exist, before they reach a path or a query.
pub fn checked_id(id: &str) -> Result<&str, ApiError> {
    if testarena_domain::validate::is_valid_id(id) {
        Ok(id)
    } else {
        Err(ApiError::NotFound(format!("no queue or task {id:?}")))
    }
}

fn no_queue(id: &str) -> ApiError {
    ApiError::NotFound(format!("no queue {id:?}"))
}

fn actor(user: &AuthUser) -> Actor<'_> {
    Actor {
        name: &user.username,
        admin: user.is_admin,
    }
}

/// How often a submission without an `id` draws a new one after a collision.
const ID_ATTEMPTS: u32 = 5;

/// Checks and stores a submission: create, rerun and the compatibility
/// routes all come here.
pub async fn submit(
    state: &AppState,
    user: &AuthUser,
    req: &CreateQueue,
) -> Result<Queue, ApiError> {
    let arrived = Instant::now();
    let mut checked = submit::check_fields(&state.config, req, &user.username)?;
    let (r, target) = (req.clone(), checked.queue.target.clone());
    let board = state
        .db(move |conn| crate::boards::requirement(conn, &r, &target))
        .await?;
    let (config, fetcher) = (state.config.clone(), state.fetcher.clone());
    let mut checked = blocking(move || {
        submit::check_repository(&config, &fetcher, &mut checked, arrived)?;
        Ok(checked)
    })
    .await?;
    // A generated id that is taken is drawn again; a chosen one is a 409.
    let mut attempts = if req.id.is_none() { ID_ATTEMPTS } else { 1 };
    let (detail, position) = loop {
        attempts -= 1;
        match store_queue(state, checked.clone(), board.clone()).await {
            Err(ApiError::Conflict(_)) if attempts > 0 => checked = checked.renamed(),
            result => break result?,
        }
    };
    state.metrics.queue_submitted();
    tracing::info!(
        queue.id = %detail.queue.id, owner = %user.username, branch = %detail.queue.branch,
        commit = detail.queue.commit_sha.as_deref().unwrap_or(""), "queue created"
    );
    Ok(queue_json(&detail, position))
}

/// Stores a checked submission: the queue's folder, then its rows (so a
/// worker that claims the queue at once finds the folder, and a client may
/// list its logs right away). Returns the stored queue and its position.
async fn store_queue(
    state: &AppState,
    checked: submit::Checked,
    board: Option<crate::boards::Requirement>,
) -> Result<(QueueDetail, Option<i64>), ApiError> {
    let dir = state.home.queue_dir(&checked.queue.id);
    let made_dir = blocking({
        let dir = dir.clone();
        move || {
            let made = !dir.exists();
            std::fs::create_dir_all(&dir).map_err(|e| ApiError::io(dir.display(), &e))?;
            Ok(made)
        }
    })
    .await?;
    let stored = state
        .db(move |conn| {
            let row = match &board {
                Some((board, tags)) => store::board_queues::create_board_queue(
                    conn,
                    &checked.queue,
                    &checked.tasks,
                    board,
                    tags,
                )?,
                None => store::create_queue(conn, &checked.queue, &checked.tasks)?,
            };
            let detail = store::queue_detail(conn, &row.id)?
                .ok_or_else(|| ApiError::internal("queue vanished after creation"))?;
            let position = store::position_of(conn, &detail.queue)?;
            Ok((detail, position))
        })
        .await;
    if stored.is_err() && made_dir {
        let _ = blocking(move || Ok(std::fs::remove_dir(&dir))).await;
    }
    stored
}

fn queue_json(detail: &QueueDetail, position: Option<i64>) -> Queue {
    let mut queue = Queue::from(detail);
    if queue.status == Status::Waiting {
        queue.position = position;
    }
    queue
}

/// A page of queues with their tasks (without test cases) and the
/// positions of the waiting ones, read in one snapshot.
pub async fn list(state: &AppState, filter: QueueFilter) -> Result<Page<Queue>, ApiError> {
    state
        .db(move |conn| {
            // One snapshot: a queue deleted or claimed meanwhile by someone
            // else is either in the page with its tasks, or not at all.
            let (page, tasks, positions) = store::snapshot(conn, |conn| {
                let page = store::list_queues(conn, &filter)?;
                let ids: Vec<&str> = page.items.iter().map(|q| q.id.as_str()).collect();
                let tasks = store::tasks_of(conn, &ids)?;
                let waiting: Vec<&str> = page
                    .items
                    .iter()
                    .filter(|q| q.status() == Status::Waiting)
                    .map(|q| q.id.as_str())
                    .collect();
                let positions = store::queue_positions(conn, &waiting)?;
                Ok((page, tasks, positions))
            })?;
            let items = page
                .items
                .iter()
                .map(|row| {
                    let of_row = tasks.iter().filter(|t| t.queue_id == row.id);
                    let mut queue = api::queue(row, of_row.map(|t| (t, &[][..])));
                    queue.position = positions.get(&row.id).copied();
                    queue
                })
                .collect();
            Ok(Page {
                items,
                next: page.next.map(|n| n.to_string()),
            })
        })
        .await
}

/// One queue with its tasks and test cases, or 404.
pub async fn load(state: &AppState, id: &str) -> Result<Queue, ApiError> {
    let id = checked_id(id)?.to_owned();
    let lost = crate::boards::lost_after(state);
    state
        .db(move |conn| {
            let read = store::snapshot(conn, |conn| {
                let Some(detail) = store::queue_detail(conn, &id)? else {
                    return Ok(None);
                };
                // known_flaky, new_failure, baseline_ms: two queries per queue.
                let facts = store::case_facts(conn, &detail)?;
                let position = store::position_of(conn, &detail.queue)?;
                Ok(Some((detail, position, facts)))
            })?;
            let (detail, position, facts) = read.ok_or_else(|| no_queue(&id))?;
            let mut queue = queue_json(&detail, position);
            store::annotate(&mut queue, &facts);
            crate::boards::add_waiting_for(conn, &detail.queue, &mut queue, lost)?;
            Ok(queue)
        })
        .await
}

/// A queue's row alone, or 404: what a ranged read needs to know.
pub async fn row(state: &AppState, id: &str) -> Result<QueueRow, ApiError> {
    let id = checked_id(id)?.to_owned();
    state
        .db(move |conn| store::get_queue(conn, &id)?.ok_or_else(|| no_queue(&id)))
        .await
}

/// A queue's status alone, or 404: what the log routes need to know.
pub async fn status(state: &AppState, id: &str) -> Result<Status, ApiError> {
    let id = checked_id(id)?.to_owned();
    state
        .db(move |conn| store::queue_status(conn, &id)?.ok_or_else(|| no_queue(&id)))
        .await
}

/// One task with its test cases, or 404.
pub async fn load_task(state: &AppState, id: &str) -> Result<Task, ApiError> {
    let id = checked_id(id)?.to_owned();
    state
        .db(move |conn| {
            let (task, cases) = store::get_task(conn, &id)?
                .ok_or_else(|| ApiError::NotFound(format!("no task {id:?}")))?;
            Ok(api::task(&task, &cases))
        })
        .await
}

/// Aborts a waiting queue, or asks the worker to stop a running one; 409
/// once final. The owner or an admin.
pub async fn abort(state: &AppState, user: &AuthUser, id: &str) -> Result<Queue, ApiError> {
    let id = checked_id(id)?.to_owned();
    let reason = format!("aborted by {}", user.username);
    let user = user.clone();
    state
        .db(
            move |conn| match store::request_abort(conn, &id, &reason, actor(&user))? {
                AbortOutcome::AlreadyFinal(q) => Err(ApiError::Conflict(format!(
                    "queue {id:?} has already ended ({})",
                    q.status
                ))),
                AbortOutcome::Aborted(detail) | AbortOutcome::Requested(detail) => {
                    tracing::info!(queue.id = %id, by = %user.username, "abort requested");
                    Ok(queue_json(&detail, None))
                }
            },
        )
        .await
}

/// Deletes a queue's rows, then its folder; 409 while it runs. The owner
/// or an admin.
pub async fn delete(state: &AppState, user: &AuthUser, id: &str) -> Result<(), ApiError> {
    let id = checked_id(id)?.to_owned();
    let user = user.clone();
    let dir = state.home.queue_dir(&id);
    state
        .db(move |conn| {
            store::delete_queue(conn, &id, actor(&user))?;
            tracing::info!(queue.id = %id, by = %user.username, "queue deleted");
            Ok(())
        })
        .await?;
    blocking(move || match std::fs::remove_dir_all(&dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ApiError::io(format_args!("removing {}", dir.display()), &e)),
    })
    .await
}

/// A new queue with the same repository, branch, commit, target, priority,
/// timeout and scenarios, owned by `user` (the owner or an admin).
pub async fn rerun(state: &AppState, user: &AuthUser, id: &str) -> Result<Queue, ApiError> {
    let old = load(state, id).await?;
    user.may_change(&old.owner)?;
    let req = CreateQueue {
        branch: old.branch,
        commit: old.commit,
        scenarios: Some(old.tasks.iter().map(crate::subsets::entry_of).collect()),
        repo: Some(old.repo),
        target: Some(old.target),
        priority: Some(old.priority),
        timeout_s: old.timeout_s,
        board: old.board,
        board_tags: (!old.board_tags.is_empty()).then_some(old.board_tags),
        ..CreateQueue::default()
    };
    submit(state, user, &req).await
}

/// The queue's JUnit XML: the worker's file (in the queue's folder, or
/// stored in the database on PostgreSQL) once the queue has ended, else
/// the same document built from the results stored so far.
pub async fn junit(state: &AppState, id: &str) -> Result<String, ApiError> {
    let id = checked_id(id)?.to_owned();
    let detail = {
        let id = id.clone();
        state
            .db(move |conn| store::queue_detail(conn, &id)?.ok_or_else(|| no_queue(&id)))
            .await?
    };
    if detail.queue.status().is_final()
        && let Some(xml) = LogSource::of(state, &id).read_all(JUNIT).await?
        && let Ok(xml) = String::from_utf8(xml)
    {
        return Ok(xml);
    }
    Ok(junit::render(&detail))
}
