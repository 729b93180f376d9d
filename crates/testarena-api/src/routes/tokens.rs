//! Personal API tokens: list, create (the secret is shown once), revoke.
//! Admins see and revoke everyone's; others only their own.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use testarena_domain::api::{CreateToken, CreatedToken, Token};
use testarena_domain::{secret, store};

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::schemas::{
    Authed, BadRequestError, ForbiddenError, NotFoundError, NumericIdParam, PayloadTooLargeError,
    ValidationFailedError,
};
use crate::state::AppState;

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/v1/tokens")
            .route(web::get().to(list))
            .route(web::post().to(create)),
    )
    .service(web::resource("/api/v1/tokens/{id}").route(web::delete().to(revoke)));
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Admins: `all=true` lists everyone's tokens.
    all: Option<bool>,
}

/// `GET /api/v1/tokens`.
#[utoipa::path(
    get,
    path = "/api/v1/tokens",
    operation_id = "list_tokens",
    tag = "auth",
    summary = "List API tokens",
    description = "The caller's own tokens; with `all=true`, an admin sees everyone's. Never the secrets.",
    params(ListQuery),
    responses(
        (status = 200, description = "The tokens", body = Vec<Token>),
        (status = 400, description = "An unknown query parameter, or `all` not `true` or `false`", body = BadRequestError),
        (status = 403, description = "`all=true` from someone not an admin", body = ForbiddenError),
        Authed,
    )
)]
async fn list(
    state: web::Data<AppState>,
    user: AuthUser,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let all = query.all.unwrap_or(false);
    if all && !user.is_admin {
        return Err(ApiError::Forbidden(
            "only admins may list everyone's tokens".into(),
        ));
    }
    let owner = (!all).then_some(user.id);
    let tokens = state
        .db(move |conn| Ok(store::list_tokens(conn, owner)?))
        .await?;
    Ok(HttpResponse::Ok().json(tokens.iter().map(Token::from).collect::<Vec<_>>()))
}

/// `POST /api/v1/tokens`.
#[utoipa::path(
    post,
    path = "/api/v1/tokens",
    operation_id = "create_token",
    tag = "auth",
    summary = "Create an API token for the caller",
    description = "The answer is the only time the secret is shown; only its hash is stored.",
    request_body = CreateToken,
    responses(
        (status = 201, description = "The token, with its secret", body = CreatedToken),
        (status = 400, description = "Malformed JSON, unknown fields or a wrong Content-Type", body = BadRequestError),
        (status = 403, description = "A cookie without the CSRF header", body = ForbiddenError),
        (status = 413, description = "The body is over the limit", body = PayloadTooLargeError),
        (status = 422, description = "A bad `name`", body = ValidationFailedError),
        Authed,
    )
)]
async fn create(
    state: web::Data<AppState>,
    user: AuthUser,
    body: crate::error::Body<CreateToken>,
) -> Result<HttpResponse, ApiError> {
    let name = body?.into_inner().name;
    let name = name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ApiError::validation(
            "name",
            "1 to 100 printable characters",
        ));
    }
    let new = secret::generate_token();
    let (hash, prefix) = (new.hash.clone(), new.prefix.clone());
    let user_id = user.id;
    let row = state
        .db(move |conn| Ok(store::create_token(conn, user_id, &name, &hash, &prefix)?))
        .await?;
    tracing::info!(user = %user.username, token.id = row.id, "token created");
    Ok(HttpResponse::Created().json(CreatedToken {
        token: Token::from(&row),
        secret: new.secret,
    }))
}

/// `DELETE /api/v1/tokens/{id}`.
#[utoipa::path(
    delete,
    path = "/api/v1/tokens/{id}",
    operation_id = "revoke_token",
    tag = "auth",
    summary = "Revoke an API token",
    description = "One's own, or anyone's for an admin; someone else's token is 404 to others.",
    params(NumericIdParam),
    responses(
        (status = 204, description = "Revoked"),
        (status = 403, description = "A cookie without the CSRF header", body = ForbiddenError),
        (status = 404, description = "No such token (of the caller's)", body = NotFoundError),
        Authed,
    )
)]
async fn revoke(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let not_found = || ApiError::NotFound(format!("no token {:?}", id.as_str()));
    let id: i32 = id.parse().map_err(|_| not_found())?;
    let actor = user.clone();
    state
        .db(move |conn| {
            let token = store::get_token(conn, id)?
                .ok_or_else(|| ApiError::NotFound(format!("no token {id}")))?;
            if token.user_id != actor.id && !actor.is_admin {
                // Someone else's token: as if it did not exist.
                return Err(ApiError::NotFound(format!("no token {id}")));
            }
            store::delete_token(conn, id)?;
            Ok(())
        })
        .await?;
    tracing::info!(user = %user.username, token.id = id, "token revoked");
    Ok(HttpResponse::NoContent().finish())
}
