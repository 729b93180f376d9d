//! Boards: list, one board, an admin's maintenance and note, an admin's
//! health-check request (DESIGN section 10). Thin handlers over the boards
//! service (`crate::boards`).

use actix_web::{HttpResponse, web};
use testarena_domain::api::{Board, BoardDetail, Queue, UpdateBoard};

use crate::auth::{Admin, AuthUser};
use crate::boards;
use crate::error::{ApiError, Body};
use crate::schemas::{
    Authed, BadRequestError, ConflictError, ForbiddenError, IdParam, NotFoundError,
    PayloadTooLargeError, ValidationFailedError,
};
use crate::state::AppState;

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/api/v1/boards").route(web::get().to(list)))
        .service(
            web::resource("/api/v1/boards/{id}")
                .route(web::get().to(get))
                .route(web::patch().to(update)),
        )
        .service(web::resource("/api/v1/boards/{id}/health").route(web::post().to(health)));
}

/// `GET /api/v1/boards`.
#[utoipa::path(
    get,
    path = "/api/v1/boards",
    operation_id = "list_boards",
    tag = "boards",
    summary = "List the farm's boards",
    responses(
        (status = 200, description = "Every registered board, by id", body = Vec<Board>),
        Authed,
    )
)]
async fn list(state: web::Data<AppState>, _user: AuthUser) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(boards::list(&state).await?))
}

/// `GET /api/v1/boards/{id}`.
#[utoipa::path(
    get,
    path = "/api/v1/boards/{id}",
    operation_id = "get_board",
    tag = "boards",
    summary = "One board with its last 20 queues",
    params(IdParam),
    responses(
        (status = 200, description = "The board", body = BoardDetail),
        (status = 404, description = "No such board", body = NotFoundError),
        Authed,
    )
)]
async fn get(
    state: web::Data<AppState>,
    _user: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(boards::detail(&state, &id).await?))
}

/// `PATCH /api/v1/boards/{id}`.
#[utoipa::path(
    patch,
    path = "/api/v1/boards/{id}",
    operation_id = "update_board",
    tag = "boards",
    summary = "Put a board in or out of maintenance, or change its note (admins)",
    params(IdParam),
    request_body = UpdateBoard,
    responses(
        (status = 200, description = "The board as changed", body = Board),
        (status = 400, description = "Malformed JSON, unknown fields or a wrong Content-Type", body = BadRequestError),
        (status = 403, description = "Not an admin, or a cookie without the CSRF header", body = ForbiddenError),
        (status = 404, description = "No such board", body = NotFoundError),
        (status = 413, description = "The body is over the limit", body = PayloadTooLargeError),
        (status = 422, description = "A note that is too long", body = ValidationFailedError),
        Authed,
    )
)]
async fn update(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<String>,
    body: Body<UpdateBoard>,
) -> Result<HttpResponse, ApiError> {
    let UpdateBoard { maintenance, note } = body?.into_inner();
    let board = boards::update(&state, &id, maintenance, note).await?;
    tracing::info!(board = %id, by = %admin.0.username, ?maintenance, "board changed");
    Ok(HttpResponse::Ok().json(board))
}

/// `POST /api/v1/boards/{id}/health`.
#[utoipa::path(
    post,
    path = "/api/v1/boards/{id}/health",
    operation_id = "check_board_health",
    tag = "boards",
    summary = "Run a health check on a board now (admins)",
    description = "Queues the board's health check (the system user's, at high priority, pinned \
        to the board), or answers the one already waiting or running.",
    params(IdParam),
    responses(
        (status = 202, description = "The health-check queue", body = Queue),
        (status = 403, description = "Not an admin, or a cookie without the CSRF header", body = ForbiddenError),
        (status = 404, description = "No such board", body = NotFoundError),
        (status = 409, description = "The board's config has no health check", body = ConflictError),
        Authed,
    )
)]
async fn health(
    state: web::Data<AppState>,
    _admin: Admin,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Accepted().json(boards::request_health(&state, &id).await?))
}
