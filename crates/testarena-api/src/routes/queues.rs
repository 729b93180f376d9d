//! Queues and tasks: create, list, get, abort, delete, rerun, JUnit XML.
//! Thin handlers over the queue service (`crate::queues`).

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use testarena_domain::api::{CreateQueue, Page, Queue, Rerun, RerunRequest, Task};
use testarena_domain::status::{Kind, Status};
use testarena_domain::store::{self, QueueFilter};

use crate::auth::AuthUser;
use crate::error::{ApiError, Body};
use crate::queues;
use crate::schemas::{
    Authed, BadRequestError, ConflictError, ForbiddenError, IdParam, NotFoundError,
    PayloadTooLargeError, ValidationFailedError,
};
use crate::state::AppState;

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
    // The older systems' paths (see `routes::compat`).
    cfg.service(web::resource("/api/queue").route(web::post().to(create)))
        .service(web::resource("/api/submit_job").route(web::post().to(create)))
        .service(web::resource("/api/job/{id}").route(web::get().to(get)))
        .service(web::resource("/api/abort/{id}").route(web::post().to(abort)))
        .service(web::resource("/api/delete/{id}").route(web::delete().to(delete)));
}

type Data = web::Data<AppState>;

/// `POST /api/v1/queues`.
#[utoipa::path(
    post,
    path = "/api/v1/queues",
    operation_id = "create_queue",
    tag = "queues",
    summary = "Submit a queue",
    description = "Checks that the repository and target are configured, that the branch exists \
        (and `commit`, when given, is on its history), and that every scenario file exists at \
        that commit and parses, then stores the queue, waiting, pinned to that commit: the \
        answer's `commit` is what the worker will run. Give `scenarios` (task ids \
        `<queue id>.<n>`) or `tasks` (`{task id: path}`, in order).",
    request_body = CreateQueue,
    responses(
        (status = 201, description = "The new queue, waiting", body = Queue,
            headers(("Location" = String, description = "`/api/v1/queues/{id}`"))),
        (status = 400, description = "Malformed JSON, unknown fields or a wrong Content-Type", body = BadRequestError),
        (status = 403, description = "Not the owner or an admin, or a cookie without the CSRF header", body = ForbiddenError),
        (status = 409, description = "The queue id, or a task id, is taken", body = ConflictError),
        (status = 413, description = "The body is over the limit", body = PayloadTooLargeError),
        (status = 422, description = "No such repository, target, branch or commit; a scenario missing or invalid", body = ValidationFailedError),
        Authed,
    )
)]
pub async fn create(
    state: Data,
    user: AuthUser,
    body: Body<CreateQueue>,
) -> Result<HttpResponse, ApiError> {
    let queue = queues::submit(&state, &user, &body?.into_inner()).await?;
    Ok(created(queue))
}

/// 201 with the new queue and its `Location`.
pub fn created(queue: Queue) -> HttpResponse {
    HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/queues/{}", queue.id)))
        .json(queue)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only queues in this status; empty for any.
    #[param(schema_with = crate::schemas::queue_status_filter)]
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
                .filter(|s| s.applies_to(Kind::Queue))
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
    let page = queues::list(&state, filter).await?;
    Ok(HttpResponse::Ok().json(page))
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
    Ok(HttpResponse::Ok().json(queues::load(&state, &id).await?))
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
    Ok(HttpResponse::Ok().json(queues::load_task(&state, &id).await?))
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
    let queue = queues::abort(&state, &user, &id).await?;
    Ok(HttpResponse::Accepted().json(queue))
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
    queues::delete(&state, &user, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /api/v1/queues/{id}/rerun`: a new queue with the same repo,
/// branch, commit, target, priority, timeout and scenarios, owned by the
/// caller.
#[utoipa::path(
    post,
    path = "/api/v1/queues/{id}/rerun",
    operation_id = "rerun_queue",
    tag = "queues",
    summary = "Run a queue again",
    description = "A new queue with the same repository, branch, commit, target, priority, \
        timeout and scenarios (subsets kept), owned by the caller. The owner or an admin. An \
        optional body: `failed_only` (only the tasks, and in them the tests, that did not \
        pass), `same_commit` (default true; false: the branch's tip) and `count` (1 to 20 \
        queues). The answer is the new queue, or a list of the new queues when the body \
        names `count`.",
    params(IdParam),
    request_body(content = Option<RerunRequest>, description = "Optional rerun options"),
    responses(
        (status = 201, description = "The new queue, waiting (a list of them when `count` was given)", body = Rerun,
            headers(("Location" = String, description = "`/api/v1/queues/{id}` of the new queue (the first, for a list)"))),
        (status = 400, description = "Malformed rerun options, or unknown fields", body = BadRequestError),
        (status = 403, description = "Not the owner or an admin, or a cookie without the CSRF header", body = ForbiddenError),
        (status = 404, description = "No such queue", body = NotFoundError),
        (status = 409, description = "The new queue's id was taken", body = ConflictError),
        (status = 422, description = "The branch or its commit is gone; a `count` out of range; `failed_only` when every task passed", body = ValidationFailedError),
        Authed,
    )
)]
pub async fn rerun(
    state: Data,
    user: AuthUser,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    // Parsed after the credentials (the extractor above), like every body.
    let Some(opts) = crate::history::rerun_options(&body)? else {
        return Ok(created(queues::rerun(&state, &user, &id).await?));
    };
    let made = crate::history::rerun(&state, &user, &id, opts).await?;
    match made {
        Rerun::One(queue) => Ok(created(*queue)),
        Rerun::Many(queues) => {
            // `Location`: the first of the new queues.
            let first = queues.first().map(|q| q.id.clone()).unwrap_or_default();
            Ok(HttpResponse::Created()
                .insert_header((header::LOCATION, format!("/api/v1/queues/{first}")))
                .json(queues))
        }
    }
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
    let xml = queues::junit(&state, &id).await?;
    Ok(HttpResponse::Ok()
        .content_type("application/xml; charset=utf-8")
        .body(xml))
}
