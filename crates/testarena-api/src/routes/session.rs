//! Dashboard sign-in (a session cookie), sign-out and "who am I".

use actix_web::{HttpRequest, HttpResponse, web};
use testarena_domain::api::{Login, User};
use testarena_domain::store;

use crate::auth::{self, AuthUser};
use crate::error::ApiError;
use crate::state::AppState;

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/v1/session")
            .route(web::post().to(login))
            .route(web::delete().to(logout)),
    )
    .route("/api/v1/me", web::get().to(me));
}

/// `POST /api/v1/session`: checks the password (rate-limited per address)
/// and sets the session cookie.
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
async fn logout(req: HttpRequest) -> HttpResponse {
    HttpResponse::NoContent()
        .cookie(auth::expired_session_cookie(auth::is_tls(&req)))
        .finish()
}

/// `GET /api/v1/me`.
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
