//! The forge routes (DESIGN section 12): a forge's webhook, the hooks a
//! repository received, and a queue's deliveries. Thin handlers over
//! `crate::forge`.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use testarena_domain::api::{Delivery, HookReceipt, HookRecord};
use testarena_domain::store::{self, deliveries};

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::forge;
use crate::queues::checked_id;
use crate::schemas::{
    Authed, BadRequestError, IdParam, Internal, NotFoundError, PayloadTooLargeError,
    UnauthorizedError, Unavailable, ValidationFailedError,
};
use crate::state::AppState;

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/api/v1/hooks/{repo}").route(web::post().to(receive)))
        .service(web::resource("/api/v1/hooks/{repo}/deliveries").route(web::get().to(hooks)))
        .service(
            web::resource("/api/v1/queues/{id}/deliveries").route(web::get().to(queue_deliveries)),
        );
}

type Data = web::Data<AppState>;

/// `{repo}`: a configured repository's name.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(names("repo"), parameter_in = Path)]
pub struct RepoParam(
    /// The `name` of a `[[repos]]` entry.
    #[param(pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    pub String,
);

/// `POST /api/v1/hooks/{repo}`.
#[utoipa::path(
    post,
    path = "/api/v1/hooks/{repo}",
    operation_id = "receive_hook",
    tag = "forges",
    summary = "A forge's webhook (Gitea, GitHub, GitLab)",
    description = "Authenticated by the forge's signature only, with the repository's \
        `webhook_secret_env`: Gitea `X-Gitea-Signature` (hex HMAC-SHA256 of the body), GitHub \
        `X-Hub-Signature-256: sha256=<hex>`, GitLab `X-Gitlab-Token`. A `push` starts one queue \
        per `[[push]]` entry of the pushed commit's `.testarena.toml` that matches the branch, \
        pinned to `after`, owned by `testarena`, with the pusher as `triggered_by`. A ping, a \
        tag push or a branch deletion answers 200 and starts nothing; other events 202. The \
        same delivery id again answers the first delivery's queues and makes none.",
    params(RepoParam),
    request_body(content = Object, description = "The forge's event body, as the forge sends it", content_type = "application/json"),
    security(()),
    responses(
        (status = 200, description = "Handled: the queues made, or why none", body = HookReceipt),
        (status = 202, description = "An event TestArena does not handle: ignored", body = HookReceipt),
        (status = 400, description = "Malformed JSON, no event header, or a push without `ref` or `after`", body = BadRequestError),
        (status = 401, description = "A missing or wrong signature, or no webhook secret configured for the repository", body = UnauthorizedError),
        (status = 413, description = "The body is over `max_body_bytes`", body = PayloadTooLargeError),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
pub async fn receive(
    state: Data,
    req: HttpRequest,
    repo: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let headers = req.headers();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (status, receipt) = forge::hooks::receive(&state, &repo, header, body).await?;
    Ok(HttpResponse::build(status).json(receipt))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HooksQuery {
    /// How many, newest first; default 50.
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
}

/// `GET /api/v1/hooks/{repo}/deliveries`.
#[utoipa::path(
    get,
    path = "/api/v1/hooks/{repo}/deliveries",
    operation_id = "list_hooks",
    tag = "forges",
    summary = "The webhooks a repository received, newest first",
    description = "Each with what came of it (`started`, `ignored`, `error` and why) and the \
        deliveries it made itself (the `error` status of a bad `.testarena.toml`).",
    params(RepoParam, HooksQuery),
    responses(
        (status = 200, description = "The hooks", body = Vec<HookRecord>),
        (status = 400, description = "An unknown query parameter, or a `limit` that is not a number", body = BadRequestError),
        (status = 404, description = "No such repository in the config", body = NotFoundError),
        (status = 422, description = "A `limit` out of range", body = ValidationFailedError),
        Authed,
    )
)]
pub async fn hooks(
    state: Data,
    _user: AuthUser,
    repo: web::Path<String>,
    query: web::Query<HooksQuery>,
) -> Result<HttpResponse, ApiError> {
    let repo = repo.into_inner();
    if state.config.repo(Some(&repo)).is_none() {
        return Err(ApiError::NotFound(format!("no repository {repo:?}")));
    }
    let limit = query.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::validation("limit", "must be between 1 and 200"));
    }
    let records = state
        .db(move |conn| {
            store::snapshot(conn, |conn| {
                let rows = deliveries::list_hooks(conn, &repo, limit)?;
                rows.iter()
                    .map(|row| Ok(forge::hook_json(row, &deliveries::hook_sent(conn, row.id)?)))
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(ApiError::from)
        })
        .await?;
    Ok(HttpResponse::Ok().json(records))
}

/// `GET /api/v1/queues/{id}/deliveries`.
#[utoipa::path(
    get,
    path = "/api/v1/queues/{id}/deliveries",
    operation_id = "queue_deliveries",
    tag = "forges",
    summary = "A queue's commit statuses and notifications, with their tries",
    description = "Oldest first. A notification's URL is shown as its scheme and host only.",
    params(IdParam),
    responses(
        (status = 200, description = "The deliveries", body = Vec<Delivery>),
        (status = 404, description = "No such queue", body = NotFoundError),
        Authed,
    )
)]
pub async fn queue_deliveries(
    state: Data,
    _user: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = checked_id(&id)?.to_owned();
    let rows = state
        .db(move |conn| {
            store::snapshot(conn, |conn| {
                if store::get_queue(conn, &id)?.is_none() {
                    return Ok(None);
                }
                Ok(Some(deliveries::queue_deliveries(conn, &id)?))
            })
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound(format!("no queue {id:?}")))
        })
        .await?;
    let json: Vec<Delivery> = rows.iter().map(forge::delivery_json).collect();
    Ok(HttpResponse::Ok().json(json))
}
