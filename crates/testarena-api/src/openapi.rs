//! The OpenAPI 3.1 description of the REST API (DESIGN sections 6 and 7),
//! served without auth at `GET /api/v1/openapi.json`.
//!
//! Each handler documents itself with `#[utoipa::path]`; the JSON types
//! derive `ToSchema` in `testarena_domain::api`. This module collects them
//! and adds what is the same for many routes:
//!
//! - the error body of DESIGN section 6 narrowed to one `code` per status
//!   ([`NotFoundError`], ...), for handlers to name as `body`; and
//!   [`Authed`], the answers every signed-in route can give (401, 429, 500,
//!   503) as reusable responses;
//! - the security schemes, and on every operation that does not declare its
//!   own (`security(())` for the public ones) the requirement "Bearer token,
//!   or Basic, or the session cookie", the cookie with the CSRF header on
//!   POST, PATCH and DELETE;
//! - the older systems' paths, as copies of the v1 operations they alias
//!   (see `routes::compat`), so the two cannot drift apart.
//!
//! The integration test `openapi.rs` compares the document with the real
//! router and validates real answers against it.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::LazyLock;

use actix_web::{HttpResponse, web};
use testarena_domain::api::{ErrorBody, ErrorCode, LogChunk, Queue, Task};
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{AllOfBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{IntoParams, IntoResponses, Modify, OpenApi, PartialSchema, ToResponse, ToSchema};

use crate::error::ApiError;
use crate::routes;

/// Where the document is served.
pub const PATH: &str = "/api/v1/openapi.json";

/// The names of the security schemes.
pub const BEARER: &str = "bearer";
pub const BASIC: &str = "basic";
pub const SESSION: &str = "session";
pub const CSRF: &str = "csrf";

#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "TestArena",
        description = "TestArena's REST API: queues of ESP-IDF firmware tests, their logs, \
            live events and JUnit results; users and API tokens. Times are RFC 3339 UTC. \
            Every error answer is `{\"error\": {\"code\", \"message\", \"field\"?}}`."
    ),
    paths(
        serve,
        routes::health::health,
        routes::health::metrics,
        routes::session::login,
        routes::session::logout,
        routes::session::me,
        routes::queues::create,
        routes::queues::list,
        routes::queues::get,
        routes::queues::delete,
        routes::queues::abort,
        routes::queues::rerun,
        routes::queues::junit_xml,
        routes::queues::get_task,
        routes::logs::list,
        routes::logs::read,
        routes::logs::events,
        routes::tokens::list,
        routes::tokens::create,
        routes::tokens::revoke,
        routes::users::list,
        routes::users::create,
        routes::users::update,
        routes::users::delete,
        routes::compat::status,
    ),
    components(
        schemas(
            LogChunk,
            ErrorBody,
            BadRequestError,
            UnauthorizedError,
            ForbiddenError,
            NotFoundError,
            ConflictError,
            PayloadTooLargeError,
            ValidationFailedError,
            RateLimitedError,
            InternalError,
            UnavailableError
        ),
        responses(Unauthorized, RateLimited, Internal, Unavailable)
    ),
    modifiers(&Security, &CompatAliases),
    tags(
        (name = "queues", description = "Queues and tasks: submit, follow, abort, delete, rerun, results"),
        (name = "logs", description = "A queue's log files and its live event stream"),
        (name = "auth", description = "Dashboard sign-in, who am I, personal API tokens"),
        (name = "users", description = "User administration (admins only)"),
        (name = "operations", description = "Health, metrics and this document"),
        (name = "compat", description = "The older systems' paths: aliases of the v1 routes, same bodies and answers"),
    )
)]
pub struct ApiDoc;

/// Registers `GET /api/v1/openapi.json`.
pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.route(PATH, web::get().to(serve));
}

/// The document as JSON, built once.
static DOCUMENT: LazyLock<Result<String, String>> =
    LazyLock::new(|| ApiDoc::openapi().to_json().map_err(|e| e.to_string()));

/// This document.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    operation_id = "openapi",
    tag = "operations",
    summary = "This OpenAPI document",
    security(()),
    responses(
        (status = 200, description = "The OpenAPI 3.1 document of this API", content_type = "application/json", body = Object),
        (status = 500, response = Internal),
    )
)]
async fn serve() -> Result<HttpResponse, ApiError> {
    let json = DOCUMENT.as_ref().map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(json.clone()))
}

/// `{id}` of a queue or a task.
#[derive(Debug, IntoParams)]
#[into_params(names("id"), parameter_in = Path)]
pub struct IdParam(
    /// A queue or task id. One that does not match the pattern answers 404,
    /// like one that does not exist.
    #[param(pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    pub String,
);

/// `{id}` of a user or a token.
#[derive(Debug, IntoParams)]
#[into_params(names("id"), parameter_in = Path)]
pub struct NumericIdParam(
    /// A user or token id. Anything but a number answers 404.
    pub i32,
);

/// The `status` filter of `GET /api/v1/queues`: a queue status, or empty
/// for any.
pub fn queue_status_filter() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some("Only queues in this status; empty for any."))
        .enum_values(Some([
            "waiting", "running", "passed", "failed", "error", "aborted", "",
        ]))
}

/// What `GET /api/status/{id}` answers: the queue, or else the task with
/// that id.
#[derive(Debug, ToSchema)]
#[serde(untagged)]
pub enum QueueOrTask {
    Queue(Queue),
    Task(Task),
}

/// The error body of DESIGN section 6 whose `code` can only be `code`.
fn error_schema(code: ErrorCode) -> Schema {
    let code_name = serde_json::to_value(code)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    AllOfBuilder::new()
        .item(Ref::from_schema_name(ErrorBody::name()))
        .item(
            ObjectBuilder::new().property(
                "error",
                ObjectBuilder::new().property(
                    "code",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .enum_values(Some([code_name])),
                ),
            ),
        )
        .into()
}

/// Declares one schema per error code, for `body = NotFoundError` in a
/// handler's responses.
macro_rules! error_schemas {
    ($($name:ident: $code:ident;)*) => {$(
        #[doc = concat!("The error body with `code` `", stringify!($code), "`.")]
        #[derive(Debug)]
        pub struct $name;

        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                error_schema(ErrorCode::$code).into()
            }
        }

        impl ToSchema for $name {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($name))
            }

            fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
                schemas.push((ErrorBody::name().into_owned(), ErrorBody::schema()));
                ErrorBody::schemas(schemas);
            }
        }
    )*};
}

error_schemas! {
    BadRequestError: BadRequest;
    UnauthorizedError: Unauthorized;
    ForbiddenError: Forbidden;
    NotFoundError: NotFound;
    ConflictError: Conflict;
    PayloadTooLargeError: PayloadTooLarge;
    ValidationFailedError: ValidationFailed;
    RateLimitedError: RateLimited;
    InternalError: Internal;
    UnavailableError: Unavailable;
}

/// A reusable error answer: `schema` as JSON, with `Retry-After` when
/// `retry_after`.
fn error_response<S: ToSchema>(description: &str, retry_after: bool) -> Response {
    let mut response = ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name(S::name())))
            .build(),
    );
    if retry_after {
        response = response.header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .minimum(Some(0)),
                )
                .description(Some("Seconds to wait before retrying"))
                .build(),
        );
    }
    response.build()
}

/// Declares the reusable responses that [`Authed`] refers to.
macro_rules! error_responses {
    ($($name:ident: $schema:ident, $retry:literal, $description:literal;)*) => {$(
        #[doc = concat!("The reusable answer: ", $description)]
        #[derive(Debug)]
        pub struct $name;

        impl<'s> ToResponse<'s> for $name {
            fn response() -> (&'s str, RefOr<Response>) {
                (stringify!($name), error_response::<$schema>($description, $retry).into())
            }
        }
    )*};
}

error_responses! {
    Unauthorized: UnauthorizedError, false,
        "No credentials, or wrong, revoked, expired or disabled ones.";
    RateLimited: RateLimitedError, true,
        "Too many failed sign-ins (password or Basic) from this client address.";
    Internal: InternalError, false,
        "A bug or a broken environment; the cause is in the server log.";
    Unavailable: UnavailableError, true,
        "The database stayed busy, or the repository could not be fetched; retry.";
}

/// The answers every route that needs a user can give besides its own:
/// 401 (the credentials), 429 (Basic credentials are rate-limited like
/// sign-ins), 500 and 503 (the database).
#[derive(Debug)]
pub struct Authed;

impl IntoResponses for Authed {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        [
            ("401", "Unauthorized"),
            ("429", "RateLimited"),
            ("500", "Internal"),
            ("503", "Unavailable"),
        ]
        .into_iter()
        .map(|(status, name)| (status.to_owned(), Ref::from_response_name(name).into()))
        .collect()
    }
}

/// The security schemes, and the requirement of every operation that does
/// not declare its own.
#[derive(Debug)]
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A personal API token (`POST /api/v1/tokens`), as `Authorization: Bearer <token>`.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            BASIC,
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "Username and password, for the older hub's clients. Failures are rate-limited per client address (429).",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            SESSION,
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::auth::SESSION_COOKIE,
                "The dashboard's session cookie, set by `POST /api/v1/session`.",
            ))),
        );
        components.add_security_scheme(
            CSRF,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Requested-With",
                "Must be `testarena`: required with the session cookie on POST, PATCH and DELETE (CSRF defence); 403 otherwise.",
            ))),
        );
        let empty: [&str; 0] = [];
        let bearer = SecurityRequirement::new(BEARER, empty);
        let basic = SecurityRequirement::new(BASIC, empty);
        let cookie = SecurityRequirement::new(SESSION, empty);
        let cookie_csrf = SecurityRequirement::new(SESSION, empty).add(CSRF, empty);
        for item in openapi.paths.paths.values_mut() {
            for (method, op) in operations(item) {
                if op.security.is_none() {
                    let session = if matches!(method, "GET" | "HEAD") {
                        cookie.clone()
                    } else {
                        cookie_csrf.clone()
                    };
                    op.security = Some(vec![bearer.clone(), basic.clone(), session]);
                }
            }
        }
    }
}

/// The operation slots of a path item, by method.
fn slots(
    item: &mut utoipa::openapi::PathItem,
) -> impl Iterator<Item = (&'static str, &mut Option<Operation>)> {
    [
        ("GET", &mut item.get),
        ("POST", &mut item.post),
        ("PUT", &mut item.put),
        ("PATCH", &mut item.patch),
        ("DELETE", &mut item.delete),
        ("HEAD", &mut item.head),
        ("OPTIONS", &mut item.options),
        ("TRACE", &mut item.trace),
    ]
    .into_iter()
}

/// Every operation of a path item, with its method.
fn operations(
    item: &mut utoipa::openapi::PathItem,
) -> impl Iterator<Item = (&'static str, &mut Operation)> {
    slots(item).filter_map(|(method, op)| op.as_mut().map(|op| (method, op)))
}

/// The older systems' paths that alias one v1 operation each:
/// (path, method, the v1 path, operation id). `GET /api/status/{id}`,
/// which answers a queue or a task, is documented on its own handler.
pub const COMPAT_ALIASES: &[(&str, &str, &str, &str)] = &[
    ("/api/queue", "POST", "/api/v1/queues", "compat_queue"),
    (
        "/api/submit_job",
        "POST",
        "/api/v1/queues",
        "compat_submit_job",
    ),
    ("/api/job/{id}", "GET", "/api/v1/queues/{id}", "compat_job"),
    (
        "/api/abort/{id}",
        "POST",
        "/api/v1/queues/{id}/abort",
        "compat_abort",
    ),
    (
        "/api/delete/{id}",
        "DELETE",
        "/api/v1/queues/{id}",
        "compat_delete",
    ),
];

/// Copies the v1 operations to the compatibility paths.
#[derive(Debug)]
struct CompatAliases;

impl Modify for CompatAliases {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, method, v1_path, operation_id) in COMPAT_ALIASES {
            let Some(mut op) = openapi
                .paths
                .paths
                .get_mut(*v1_path)
                .and_then(|item| operations(item).find(|(m, _)| m == method))
                .map(|(_, op)| op.clone())
            else {
                // The test fails on the missing path; the server still starts.
                tracing::error!(%v1_path, "openapi: the v1 operation of a compatibility path is missing");
                continue;
            };
            op.operation_id = Some((*operation_id).to_owned());
            op.tags = Some(vec!["compat".to_owned()]);
            op.summary = Some(format!(
                "{} (alias of {method} {v1_path})",
                op.summary.as_deref().unwrap_or_default()
            ));
            let item = openapi.paths.paths.entry((*path).to_owned()).or_default();
            if let Some((_, slot)) = slots(item).find(|(m, _)| m == method) {
                *slot = Some(op);
            }
        }
    }
}
