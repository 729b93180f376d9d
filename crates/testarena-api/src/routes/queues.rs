//! Queues and tasks: create, list, get, abort, delete, rerun, JUnit XML.

use std::time::Instant;

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use testarena_domain::api::{CreateQueue, Page, Queue, Task};
use testarena_domain::junit;
use testarena_domain::models::QueueDetail;
use testarena_domain::status::Status;
use testarena_domain::store::{self, AbortOutcome, QueueFilter};

use crate::Body;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::openapi::{
    Authed, BadRequestError, ConflictError, ForbiddenError, IdParam, NotFoundError,
    PayloadTooLargeError, ValidationFailedError,
};
use crate::state::{AppState, blocking};
use crate::submit;

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/v1/queues")
            .route(web::post().to(create))
            .route(web::get().to(list)),
    )
    .service(
        web::resource("/api/v1/queues/{id}")
            .route(web::get().to(get))
            .route(web::delete().to(delete)),
    )
    .service(web::resource("/api/v1/queues/{id}/abort").route(web::post().to(abort)))
    .service(web::resource("/api/v1/queues/{id}/rerun").route(web::post().to(rerun)))
    .service(web::resource("/api/v1/queues/{id}/junit.xml").route(web::get().to(junit_xml)))
    .service(web::resource("/api/v1/tasks/{id}").route(web::get().to(get_task)));
}

type Data = web::Data<AppState>;

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

/// 404 for a missing queue, 403 unless `user` owns it or is an admin: who
/// may abort or delete it.
fn check_owner(
    conn: &mut testarena_domain::db::SqliteConnection,
    id: &str,
    user: &AuthUser,
) -> Result<(), ApiError> {
    let queue = store::get_queue(conn, id)?.ok_or_else(|| no_queue(id))?;
    user.may_change(&queue.owner)
}

/// `POST /api/v1/queues`.
#[utoipa::path(
    post,
    path = "/api/v1/queues",
    operation_id = "create_queue",
    tag = "queues",
    summary = "Submit a queue",
    description = "Checks that the repository and target are configured, that the branch exists \
        and that every scenario file exists at its tip and parses, then stores the queue, waiting. \
        Give `scenarios` (task ids `<queue id>.<n>`) or `tasks` (`{task id: path}`, in order).",
    request_body = CreateQueue,
    responses(
        (status = 201, description = "The new queue, waiting", body = Queue,
            headers(("Location" = String, description = "`/api/v1/queues/{id}`"))),
        (status = 400, description = "Malformed JSON, unknown fields or a wrong Content-Type", body = BadRequestError),
        (status = 403, description = "Not the owner or an admin, or a cookie without the CSRF header", body = ForbiddenError),
        (status = 409, description = "The queue id, or a task id, is taken", body = ConflictError),
        (status = 413, description = "The body is over the limit", body = PayloadTooLargeError),
        (status = 422, description = "No such repository, target or branch; a scenario missing or invalid", body = ValidationFailedError),
        Authed,
    )
)]
pub async fn create(
    state: Data,
    user: AuthUser,
    body: Body<CreateQueue>,
) -> Result<HttpResponse, ApiError> {
    let body = body?;
    let queue = submit_queue(&state, &user, &body).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/queues/{}", queue.id)))
        .json(queue))
}

/// Checks and stores a submission; shared by create, rerun and the
/// compatibility routes.
pub async fn submit_queue(
    state: &Data,
    user: &AuthUser,
    req: &CreateQueue,
) -> Result<Queue, ApiError> {
    let arrived = Instant::now();
    let checked = submit::check_fields(&state.config, req, &user.username)?;
    let config = state.config.clone();
    let st = state.clone();
    let checked = blocking(move || {
        submit::check_repository(&config, &st.fetcher, &checked, arrived)?;
        Ok(checked)
    })
    .await?;
    // A generated id that is taken is drawn again; a chosen one is a 409.
    let mut checked = checked;
    let mut attempts = if req.id.is_none() { ID_ATTEMPTS } else { 1 };
    let (detail, position) = loop {
        attempts -= 1;
        match store_queue(state, checked.clone()).await {
            Err(ApiError::Conflict(_)) if attempts > 0 => checked = checked.renamed(),
            result => break result?,
        }
    };
    state.metrics.queue_submitted();
    tracing::info!(queue.id = %detail.queue.id, owner = %user.username, branch = %detail.queue.branch, "queue created");
    Ok(queue_json(&detail, position))
}

/// How often a submission without an `id` draws a new one after a collision.
const ID_ATTEMPTS: u32 = 5;

/// Stores a checked submission: the queue's folder, then its rows (so a
/// worker that claims the queue at once finds the folder, and a client may
/// list its logs right away). Returns the stored queue and its position.
async fn store_queue(
    state: &Data,
    checked: submit::Checked,
) -> Result<(QueueDetail, Option<i64>), ApiError> {
    let dir = state.home.queue_dir(&checked.queue.id);
    let made_dir = !dir.exists();
    std::fs::create_dir_all(&dir).map_err(|e| ApiError::io(dir.display(), &e))?;
    let stored = state
        .db(move |conn| {
            let row = store::create_queue(conn, &checked.queue, &checked.tasks)?;
            let detail = store::queue_detail(conn, &row.id)?
                .ok_or_else(|| ApiError::internal("queue vanished after creation"))?;
            Ok((detail, store::queue_position(conn, &row.id)?))
        })
        .await;
    if stored.is_err() && made_dir {
        let _ = std::fs::remove_dir(&dir);
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

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only queues in this status; empty for any.
    #[param(schema_with = crate::openapi::queue_status_filter)]
    status: Option<String>,
    /// Only this user's queues; empty for anyone's.
    owner: Option<String>,
    /// Only queues of this branch; empty for any.
    branch: Option<String>,
    /// Page size, default 50.
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    /// The `next` of the previous page.
    #[param(pattern = r"^([+-]?[0-9]+)?$")]
    before: Option<String>,
}

/// `GET /api/v1/queues`.
#[utoipa::path(
    get,
    path = "/api/v1/queues",
    operation_id = "list_queues",
    tag = "queues",
    summary = "List queues, newest first",
    description = "A page of queues with their tasks (without test cases). Pass `next` as \
        `before` for the following page; queues created meanwhile are neither skipped nor repeated.",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of queues", body = Page<Queue>),
        (status = 400, description = "An unknown query parameter, or a `limit` that is not a number", body = BadRequestError),
        (status = 422, description = "A bad `status`, `limit` or `before`", body = ValidationFailedError),
        Authed,
    )
)]
pub async fn list(
    state: Data,
    _user: AuthUser,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let status = q
        .status
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<Status>()
                .ok()
                .filter(|s| s.applies_to(testarena_domain::status::Kind::Queue))
                .ok_or_else(|| {
                    ApiError::validation(
                        "status",
                        "must be one of waiting, running, passed, failed, error, aborted",
                    )
                })
        })
        .transpose()?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=store::MAX_PAGE).contains(&limit) {
        return Err(ApiError::validation(
            "limit",
            format!("must be between 1 and {}", store::MAX_PAGE),
        ));
    }
    let before = q
        .before
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<i32>()
                .map_err(|_| ApiError::validation("before", "not a cursor from a previous page"))
        })
        .transpose()?;
    let filter = QueueFilter {
        status,
        owner: q.owner.filter(|s| !s.is_empty()),
        branch: q.branch.filter(|s| !s.is_empty()),
        before,
        limit,
    };
    let page = state
        .db(move |conn| {
            // One snapshot: a queue deleted or claimed meanwhile by someone
            // else is either in the page with its tasks, or not at all.
            let (page, tasks, waiting_positions) = store::snapshot(conn, |conn| {
                let page = store::list_queues(conn, &filter)?;
                let ids: Vec<&str> = page.items.iter().map(|q| q.id.as_str()).collect();
                let tasks = store::tasks_of(conn, &ids)?;
                let positions = page
                    .items
                    .iter()
                    .filter(|q| q.status() == Status::Waiting)
                    .map(|q| Ok((q.id.clone(), store::queue_position(conn, &q.id)?)))
                    .collect::<store::StoreResult<std::collections::HashMap<_, _>>>()?;
                Ok((page, tasks, positions))
            })?;
            let items = page
                .items
                .iter()
                .map(|row| {
                    let mut queue = Queue::from_row(row).with_tasks(
                        tasks
                            .iter()
                            .filter(|t| t.queue_id == row.id)
                            .map(|t| (t, &[][..])),
                    );
                    queue.position = waiting_positions.get(&row.id).copied().flatten();
                    queue
                })
                .collect();
            Ok(Page {
                items,
                next: page.next.map(|n| n.to_string()),
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// One queue with its tasks and test cases, or 404.
pub async fn load_queue(state: &Data, id: &str) -> Result<Queue, ApiError> {
    let id = checked_id(id)?.to_owned();
    state
        .db(move |conn| {
            let read = store::snapshot(conn, |conn| {
                let Some(detail) = store::queue_detail(conn, &id)? else {
                    return Ok(None);
                };
                Ok(Some((detail, store::queue_position(conn, &id)?)))
            })?;
            let (detail, position) = read.ok_or_else(|| no_queue(&id))?;
            Ok(queue_json(&detail, position))
        })
        .await
}

/// `GET /api/v1/queues/{id}`.
#[utoipa::path(
    get,
    path = "/api/v1/queues/{id}",
    operation_id = "get_queue",
    tag = "queues",
    summary = "A queue with its tasks and test cases",
    params(IdParam),
    responses(
        (status = 200, description = "The queue", body = Queue),
        (status = 404, description = "No such queue", body = NotFoundError),
        Authed,
    )
)]
pub async fn get(
    state: Data,
    _user: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(load_queue(&state, &id).await?))
}

/// `GET /api/v1/tasks/{id}`.
#[utoipa::path(
    get,
    path = "/api/v1/tasks/{id}",
    operation_id = "get_task",
    tag = "queues",
    summary = "A task with its test cases",
    params(IdParam),
    responses(
        (status = 200, description = "The task", body = Task),
        (status = 404, description = "No such task", body = NotFoundError),
        Authed,
    )
)]
pub async fn get_task(
    state: Data,
    _user: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(load_task(&state, &id).await?))
}

pub async fn load_task(state: &Data, id: &str) -> Result<Task, ApiError> {
    let id = checked_id(id)?.to_owned();
    state
        .db(move |conn| {
            let (task, cases) = store::get_task(conn, &id)?
                .ok_or_else(|| ApiError::NotFound(format!("no task {id:?}")))?;
            Ok(Task::from_rows(&task, &cases))
        })
        .await
}

/// `POST /api/v1/queues/{id}/abort`: immediate for a waiting queue, a
/// request the worker acts on for a running one, 409 once final.
#[utoipa::path(
    post,
    path = "/api/v1/queues/{id}/abort",
    operation_id = "abort_queue",
    tag = "queues",
    summary = "Abort a queue",
    description = "Immediate for a waiting queue; for a running one a request that its worker \
        carries out within seconds (the answer may still say `running`). The owner or an admin.",
    params(IdParam),
    responses(
        (status = 202, description = "Aborted, or the abort requested", body = Queue),
        (status = 403, description = "Not the owner or an admin, or a cookie without the CSRF header", body = ForbiddenError),
        (status = 404, description = "No such queue", body = NotFoundError),
        (status = 409, description = "The queue has already ended", body = ConflictError),
        Authed,
    )
)]
pub async fn abort(
    state: Data,
    user: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let queue = abort_queue(&state, &user, &id).await?;
    Ok(HttpResponse::Accepted().json(queue))
}

pub async fn abort_queue(state: &Data, user: &AuthUser, id: &str) -> Result<Queue, ApiError> {
    let id = checked_id(id)?.to_owned();
    let reason = format!("aborted by {}", user.username);
    let user = user.clone();
    state
        .db(move |conn| {
            check_owner(conn, &id, &user)?;
            match store::request_abort(conn, &id, &reason)? {
                AbortOutcome::AlreadyFinal(q) => Err(ApiError::Conflict(format!(
                    "queue {id:?} has already ended ({})",
                    q.status
                ))),
                AbortOutcome::Aborted(_) | AbortOutcome::Requested(_) => {
                    tracing::info!(queue.id = %id, by = %user.username, "abort requested");
                    let detail = store::queue_detail(conn, &id)?.ok_or_else(|| no_queue(&id))?;
                    Ok(queue_json(&detail, None))
                }
            }
        })
        .await
}

/// `DELETE /api/v1/queues/{id}`: 409 while running.
#[utoipa::path(
    delete,
    path = "/api/v1/queues/{id}",
    operation_id = "delete_queue",
    tag = "queues",
    summary = "Delete a queue and its files",
    description = "Allowed while waiting or once ended. The owner or an admin.",
    params(IdParam),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Not the owner or an admin, or a cookie without the CSRF header", body = ForbiddenError),
        (status = 404, description = "No such queue", body = NotFoundError),
        (status = 409, description = "The queue is running: abort it first", body = ConflictError),
        Authed,
    )
)]
pub async fn delete(
    state: Data,
    user: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    delete_queue(&state, &user, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn delete_queue(state: &Data, user: &AuthUser, id: &str) -> Result<(), ApiError> {
    let id = checked_id(id)?.to_owned();
    let user = user.clone();
    let dir = state.home.queue_dir(&id);
    state
        .db(move |conn| {
            check_owner(conn, &id, &user)?;
            store::delete_queue(conn, &id)?;
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

/// `POST /api/v1/queues/{id}/rerun`: a new queue with the same repo,
/// branch, target, priority, timeout and scenarios, owned by the caller.
#[utoipa::path(
    post,
    path = "/api/v1/queues/{id}/rerun",
    operation_id = "rerun_queue",
    tag = "queues",
    summary = "Run a queue again",
    description = "A new queue with the same repository, branch (at its current tip), target, \
        priority, timeout and scenarios, owned by the caller. The owner or an admin.",
    params(IdParam),
    responses(
        (status = 201, description = "The new queue, waiting", body = Queue,
            headers(("Location" = String, description = "`/api/v1/queues/{id}` of the new queue"))),
        (status = 403, description = "Not the owner or an admin, or a cookie without the CSRF header", body = ForbiddenError),
        (status = 404, description = "No such queue", body = NotFoundError),
        (status = 409, description = "The new queue's id was taken", body = ConflictError),
        (status = 422, description = "The branch or a scenario is gone or now invalid", body = ValidationFailedError),
        Authed,
    )
)]
pub async fn rerun(
    state: Data,
    user: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let old = load_queue(&state, &id).await?;
    user.may_change(&old.owner)?;
    let req = CreateQueue {
        branch: old.branch.clone(),
        scenarios: Some(old.tasks.iter().map(|t| t.scenario.clone()).collect()),
        repo: Some(old.repo.clone()),
        target: Some(old.target.clone()),
        priority: Some(old.priority),
        timeout_s: old.timeout_s,
        ..CreateQueue::default()
    };
    let queue = submit_queue(&state, &user, &req).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/queues/{}", queue.id)))
        .json(queue))
}

/// `GET /api/v1/queues/{id}/junit.xml`: the worker's file, or the same
/// document built from the stored results when the file is missing.
#[utoipa::path(
    get,
    path = "/api/v1/queues/{id}/junit.xml",
    operation_id = "queue_junit",
    tag = "queues",
    summary = "The queue's results as JUnit XML",
    description = "The file the worker wrote when the queue ended; before that, or without it, \
        the same document built from the results stored so far.",
    params(IdParam),
    responses(
        (status = 200, description = "JUnit XML", content_type = "application/xml", body = String),
        (status = 404, description = "No such queue", body = NotFoundError),
        Authed,
    )
)]
pub async fn junit_xml(
    state: Data,
    _user: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = checked_id(&id)?.to_owned();
    let path = state.home.junit(&id);
    let xml = state
        .db(move |conn| {
            let detail = store::queue_detail(conn, &id)?.ok_or_else(|| no_queue(&id))?;
            match std::fs::read_to_string(&path) {
                Ok(xml) if detail.queue.status().is_final() => Ok(xml),
                _ => Ok(junit::render(&detail)),
            }
        })
        .await?;
    Ok(HttpResponse::Ok()
        .content_type("application/xml; charset=utf-8")
        .body(xml))
}
