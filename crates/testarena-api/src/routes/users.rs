//! User administration (admins only): list, create, change, delete.

use actix_web::{HttpResponse, web};
use testarena_domain::api::{CreateUser, UpdateUser, User};
use testarena_domain::store::{self, UserChanges};
use testarena_domain::{secret, validate};

use crate::auth::Admin;
use crate::error::ApiError;
use crate::schemas::{
    Authed, BadRequestError, ConflictError, ForbiddenError, NotFoundError, NumericIdParam,
    PayloadTooLargeError, ValidationFailedError,
};
use crate::state::{AppState, blocking};

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/v1/users")
            .route(web::get().to(list))
            .route(web::post().to(create)),
    )
    .service(
        web::resource("/api/v1/users/{id}")
            .route(web::patch().to(update))
            .route(web::delete().to(delete)),
    );
}

async fn hash(password: String) -> Result<String, ApiError> {
    blocking(move || secret::hash_password(&password).map_err(ApiError::internal)).await
}

fn user_id(id: &str) -> Result<i32, ApiError> {
    id.parse()
        .map_err(|_| ApiError::NotFound(format!("no user {id:?}")))
}

/// `GET /api/v1/users`.
#[utoipa::path(
    get,
    path = "/api/v1/users",
    operation_id = "list_users",
    tag = "users",
    summary = "List users",
    responses(
        (status = 200, description = "Every user", body = Vec<User>),
        (status = 403, description = "Not an admin", body = ForbiddenError),
        Authed,
    )
)]
async fn list(state: web::Data<AppState>, _admin: Admin) -> Result<HttpResponse, ApiError> {
    let users = state.db(|conn| Ok(store::list_users(conn)?)).await?;
    Ok(HttpResponse::Ok().json(users.iter().map(User::from).collect::<Vec<_>>()))
}

/// `POST /api/v1/users`.
#[utoipa::path(
    post,
    path = "/api/v1/users",
    operation_id = "create_user",
    tag = "users",
    summary = "Create a user",
    request_body = CreateUser,
    responses(
        (status = 201, description = "The new user", body = User),
        (status = 400, description = "Malformed JSON, unknown fields or a wrong Content-Type", body = BadRequestError),
        (status = 403, description = "Not an admin, or a cookie without the CSRF header", body = ForbiddenError),
        (status = 409, description = "The username is taken", body = ConflictError),
        (status = 413, description = "The body is over the limit", body = PayloadTooLargeError),
        (status = 422, description = "A bad username or password", body = ValidationFailedError),
        Authed,
    )
)]
async fn create(
    state: web::Data<AppState>,
    admin: Admin,
    body: crate::error::Body<CreateUser>,
) -> Result<HttpResponse, ApiError> {
    let CreateUser {
        username,
        password,
        is_admin,
    } = body?.into_inner();
    validate::username("username", &username)?;
    validate::password("password", &password)?;
    let hash = hash(password).await?;
    let row = state
        .db(move |conn| Ok(store::create_user(conn, &username, &hash, is_admin)?))
        .await?;
    tracing::info!(user = %row.username, by = %admin.0.username, is_admin, "user created");
    Ok(HttpResponse::Created().json(User::from(&row)))
}

/// `PATCH /api/v1/users/{id}`.
#[utoipa::path(
    patch,
    path = "/api/v1/users/{id}",
    operation_id = "update_user",
    tag = "users",
    summary = "Change a user's password, admin flag or disabled flag",
    description = "A new password ends the user's sessions. The last enabled admin cannot be \
        demoted or disabled.",
    params(NumericIdParam),
    request_body = UpdateUser,
    responses(
        (status = 200, description = "The user as changed", body = User),
        (status = 400, description = "Malformed JSON, unknown fields or a wrong Content-Type", body = BadRequestError),
        (status = 403, description = "Not an admin, or a cookie without the CSRF header", body = ForbiddenError),
        (status = 404, description = "No such user", body = NotFoundError),
        (status = 409, description = "This is the last enabled admin", body = ConflictError),
        (status = 413, description = "The body is over the limit", body = PayloadTooLargeError),
        (status = 422, description = "A bad password", body = ValidationFailedError),
        Authed,
    )
)]
async fn update(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<String>,
    body: crate::error::Body<UpdateUser>,
) -> Result<HttpResponse, ApiError> {
    let id = user_id(&id)?;
    let UpdateUser {
        password,
        is_admin,
        disabled,
    } = body?.into_inner();
    let password_hash = match password {
        Some(p) => {
            validate::password("password", &p)?;
            Some(hash(p).await?)
        }
        None => None,
    };
    let changes = UserChanges {
        password_hash,
        is_admin,
        disabled,
    };
    let row = state
        .db(move |conn| Ok(store::update_user(conn, id, &changes)?))
        .await?;
    tracing::info!(user = %row.username, by = %admin.0.username, "user changed");
    Ok(HttpResponse::Ok().json(User::from(&row)))
}

/// `DELETE /api/v1/users/{id}`.
#[utoipa::path(
    delete,
    path = "/api/v1/users/{id}",
    operation_id = "delete_user",
    tag = "users",
    summary = "Delete a user",
    description = "The last enabled admin cannot be deleted.",
    params(NumericIdParam),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Not an admin, or a cookie without the CSRF header", body = ForbiddenError),
        (status = 404, description = "No such user", body = NotFoundError),
        (status = 409, description = "This is the last enabled admin", body = ConflictError),
        Authed,
    )
)]
async fn delete(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = user_id(&id)?;
    let row = state
        .db(move |conn| Ok(store::delete_user(conn, id)?))
        .await?;
    tracing::info!(user = %row.username, by = %admin.0.username, "user deleted");
    Ok(HttpResponse::NoContent().finish())
}
