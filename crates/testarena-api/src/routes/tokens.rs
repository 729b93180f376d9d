//! Personal API tokens: list, create (the secret is shown once), revoke.
//! Admins see and revoke everyone's; others only their own.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use testarena_domain::api::{CreateToken, CreatedToken, Token};
use testarena_domain::{secret, store};

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::state::AppState;

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/v1/tokens")
            .route(web::get().to(list))
            .route(web::post().to(create)),
    )
    .route("/api/v1/tokens/{id}", web::delete().to(revoke));
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Admins: `all=true` lists everyone's tokens.
    all: Option<bool>,
}

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

async fn create(
    state: web::Data<AppState>,
    user: AuthUser,
    body: crate::Body<CreateToken>,
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
