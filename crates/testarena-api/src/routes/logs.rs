//! A queue's files and live events: thin handlers over `crate::logs` (the
//! source of a queue's files, on disk or in the database, and the follow
//! side) and the queue service.

use actix_web::body::SizedStream;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use testarena_domain::api::LogFile;

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::logs::files::{MAX_READ, checked_path};
use crate::logs::follow::{self, Followers};
use crate::logs::source::LogSource;
use crate::queues;
use crate::schemas::{Authed, BadRequestError, IdParam, NotFoundError, ValidationFailedError};
use crate::state::AppState;

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::Data::new(Followers::default()))
        .service(web::resource("/api/v1/queues/{id}/logs").route(web::get().to(list)))
        .service(web::resource("/api/v1/queues/{id}/logs/{path:.*}").route(web::get().to(read)))
        .service(web::resource("/api/v1/queues/{id}/events").route(web::get().to(events)));
}

type Data = web::Data<AppState>;

/// `GET /api/v1/queues/{id}/logs`.
#[utoipa::path(
    get,
    path = "/api/v1/queues/{id}/logs",
    operation_id = "list_logs",
    tag = "logs",
    summary = "The queue's files",
    description = "Every file under the queue's folder (logs and `junit.xml`), by path; on \
        PostgreSQL every file stored for it, with the queue's last change as `modified_at`.",
    params(IdParam),
    responses(
        (status = 200, description = "The files, sorted by path", body = Vec<LogFile>),
        (status = 404, description = "No such queue", body = NotFoundError),
        Authed,
    )
)]
async fn list(
    state: Data,
    _user: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    queues::status(&state, &id).await?;
    let files = LogSource::of(&state, &id).list().await?;
    Ok(HttpResponse::Ok().json(files))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct RangeQuery {
    /// First byte to return, default 0; past the end: an empty answer.
    offset: Option<u64>,
    /// Most bytes to return, default and at most 4 MiB.
    #[param(minimum = 1, maximum = 4194304)]
    limit: Option<u64>,
}

/// `GET /api/v1/queues/{id}/logs/{path}`.
#[utoipa::path(
    get,
    path = "/api/v1/queues/{id}/logs/{path}",
    operation_id = "read_log",
    tag = "logs",
    summary = "Read a file of the queue, from an offset",
    description = "The bytes as they were written (output that is not UTF-8 included). Follow a \
        running queue's log by asking again from `offset` + the length received until \
        `X-Log-Complete` is `true` and the offset reaches `X-Log-Size`. On PostgreSQL the \
        bytes come from the database, in order: a read ends where a chunk is not stored yet.",
    params(
        IdParam,
        ("path" = String, Path, description = "Relative to the queue's folder, e.g. `tasks/<task id>/<test>.log`: `/`-separated names of `[A-Za-z0-9._-]`, no `.` or `..`"),
        RangeQuery,
    ),
    responses(
        (status = 200, description = "The bytes from `offset`", content_type = "text/plain", body = String,
            headers(
                ("X-Log-Size" = u64, description = "The file's size now, in bytes (on PostgreSQL: the end of its last stored chunk)"),
                ("X-Log-Complete" = bool, description = "`true` once the queue has ended and (on PostgreSQL) its worker stored the rest: the file will not grow"),
            )),
        (status = 400, description = "An unknown query parameter, a value that is not a number, or a path that cannot be decoded", body = BadRequestError),
        (status = 404, description = "No such queue or file, or a path that leaves the queue's folder", body = NotFoundError),
        (status = 422, description = "`limit` out of range", body = ValidationFailedError),
        Authed,
    )
)]
async fn read(
    state: Data,
    _user: AuthUser,
    path: web::Path<(String, String)>,
    query: web::Query<RangeQuery>,
) -> Result<HttpResponse, ApiError> {
    let (id, rel) = path.into_inner();
    checked_path(&rel)?;
    let row = queues::row(&state, &id).await?;
    let offset = query.offset.unwrap_or(0);
    let limit = query.limit.unwrap_or(MAX_READ);
    if limit == 0 || limit > MAX_READ {
        return Err(ApiError::validation(
            "limit",
            format!("must be between 1 and {MAX_READ}"),
        ));
    }
    let source = LogSource::of(&state, &id);
    // Completeness first: bytes read after it said so are all there are.
    let complete = source.complete(&row).await?;
    let range = source.range(rel, offset, limit).await?;
    let mut response = HttpResponse::Ok();
    response
        .content_type("text/plain; charset=utf-8")
        .insert_header(("X-Log-Size", range.size.to_string()))
        .insert_header(("X-Log-Complete", complete.to_string()))
        .insert_header(("X-Content-Type-Options", "nosniff"));
    Ok(match range.len {
        Some(len) => response.body(SizedStream::new(len, range.body)),
        None => response.streaming(range.body),
    })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct EventsQuery {
    /// Follow only this file.
    path: Option<String>,
    /// Start that file at this byte offset (default 0).
    offset: Option<u64>,
}

/// `GET /api/v1/queues/{id}/events`: `status` (the queue) on every change,
/// `log` (`{"path","offset","next_offset","text"}`) as complete lines arrive, and `end`
/// once the queue is final and every file has been sent to its end.
#[utoipa::path(
    get,
    path = "/api/v1/queues/{id}/events",
    operation_id = "queue_events",
    tag = "logs",
    summary = "Follow a queue live (Server-Sent Events)",
    description = "Events, each `data` one line of JSON: `status` (a `Queue`) first and on every \
        change; `log` (a `LogChunk`: complete lines of a `.log` file as they are written, with the byte \
        offset to resume from in `next_offset`); `end` \
        (the final `Queue`, or `{\"status\": \"deleted\"}` when the queue was deleted) once \
        the queue has ended and every file was sent to its end, after which the stream closes. \
        Comment lines keep an idle stream open. The stream stays open while the queue runs.",
    params(IdParam, EventsQuery),
    responses(
        (status = 200, description = "The event stream", content_type = "text/event-stream", body = String),
        (status = 400, description = "An unknown query parameter, or an `offset` that is not a number", body = BadRequestError),
        (status = 404, description = "No such queue, or a bad `path`", body = NotFoundError),
        Authed,
    )
)]
async fn events(
    state: Data,
    followers: web::Data<Followers>,
    _user: AuthUser,
    id: web::Path<String>,
    query: web::Query<EventsQuery>,
) -> Result<HttpResponse, ApiError> {
    let first = queues::load(&state, &id).await?;
    let only = query
        .path
        .as_deref()
        .map(checked_path)
        .transpose()?
        .map(str::to_owned);
    let start = query.offset.unwrap_or(0);
    let body = follow::open(
        state.into_inner(),
        followers.into_inner(),
        first,
        only,
        start,
    )
    .await?;
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body))
}
