//! Dashboard sign-in (a session cookie), sign-out and "who am I".

use actix_web::{HttpRequest, HttpResponse, web};
use testarena_domain::api::{Login, User};
use testarena_domain::store;

use crate::auth::{self, AuthUser};
use crate::error::ApiError;
use crate::schemas::{
    BadRequestError, Internal, PayloadTooLargeError, RateLimited, Unauthorized, Unavailable,
};
use crate::state::AppState;

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/v1/session")
            .route(web::post().to(login))
            .route(web::delete().to(logout)),
    )
    .service(web::resource("/api/v1/me").route(web::get().to(me)));
}

/// `POST /api/v1/session`: checks the password (rate-limited per address)
/// and sets the session cookie.
#[utoipa::path(
    post,
    path = "/api/v1/session",
    operation_id = "login",
    tag = "auth",
    summary = "Sign in: set the session cookie",
    description = "Checks the password; failures are rate-limited per client address.",
    security(()),
    request_body = Login,
    responses(
        (status = 200, description = "Signed in: the user", body = User,
            headers(("Set-Cookie" = String, description = "`testarena_session`: HttpOnly, SameSite=Strict, Secure behind TLS"))),
        (status = 400, description = "Malformed JSON, unknown fields or a wrong Content-Type", body = BadRequestError),
        (status = 401, response = Unauthorized),
        (status = 413, description = "The body is over the limit", body = PayloadTooLargeError),
        (status = 429, response = RateLimited),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<Login>,
) -> Result<HttpResponse, ApiError> {
    let ip = auth::client_ip(&req);
    let user = auth::verify_credentials(&state, ip, &body.username, &body.password).await?;
    tracing::info!(user = %user.username, %ip, "signed in");
    Ok(HttpResponse::Ok()
        .cookie(auth::session_cookie(&state, &user, auth::is_tls(&req)))
        .json(User::from(&user)))
}

/// `DELETE /api/v1/session`: removes the cookie. Anyone may call it.
#[utoipa::path(
    delete,
    path = "/api/v1/session",
    operation_id = "logout",
    tag = "auth",
    summary = "Sign out: remove the session cookie",
    description = "Anyone may call it.",
    security(()),
    responses(
        (status = 204, description = "Signed out",
            headers(("Set-Cookie" = String, description = "Expires `testarena_session`"))),
    )
)]
async fn logout(req: HttpRequest) -> HttpResponse {
    HttpResponse::NoContent()
        .cookie(auth::expired_session_cookie(auth::is_tls(&req)))
        .finish()
}

/// `GET /api/v1/me`.
#[utoipa::path(
    get,
    path = "/api/v1/me",
    operation_id = "me",
    tag = "auth",
    summary = "Who am I",
    responses(
        (status = 200, description = "The signed-in user", body = User),
        crate::schemas::Authed,
    )
)]
async fn me(state: web::Data<AppState>, user: AuthUser) -> Result<HttpResponse, ApiError> {
    let id = user.id;
    let row = state
        .db(move |conn| {
            store::user_by_id(conn, id)?
                .ok_or_else(|| ApiError::Unauthorized("no such user".into()))
        })
        .await?;
    Ok(HttpResponse::Ok().json(User::from(&row)))
}
