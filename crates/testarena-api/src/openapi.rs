//! The OpenAPI 3.1 description of the REST API (DESIGN sections 6 and 7),
//! served without auth at `GET /api/v1/openapi.json`.
//!
//! Each handler documents itself with `#[utoipa::path]`, naming the shared
//! pieces of `crate::schemas`; the JSON types derive `ToSchema` in
//! `testarena_wire::api`. This module collects them and adds what is the
//! same for many routes:
//!
//! - the security schemes, and on every operation that does not declare its
//!   own (`security(())` for the public ones) the requirement "Bearer token,
//!   or Basic, or the session cookie", the cookie with the CSRF header on
//!   POST, PATCH and DELETE;
//! - the older systems' paths, as copies of the v1 operations they alias
//!   (see `routes::compat`), so the two cannot drift apart.
//!
//! The integration test `openapi.rs` compares the document with the real
//! router and validates real answers against it.

use std::sync::LazyLock;

use actix_web::{HttpResponse, web};
use testarena_domain::api::{ErrorBody, LogChunk};
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityRequirement, SecurityScheme,
};
use utoipa::{Modify, OpenApi};

use crate::error::ApiError;
use crate::routes;
use crate::schemas::{
    BadRequestError, ConflictError, ForbiddenError, Internal, InternalError, NotFoundError,
    PayloadTooLargeError, RateLimited, RateLimitedError, Unauthorized, UnauthorizedError,
    Unavailable, UnavailableError, ValidationFailedError,
};

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
        routes::settings::client_config,
        routes::queues::create,
        routes::queues::list,
        routes::queues::get,
        routes::queues::delete,
        routes::queues::abort,
        routes::queues::rerun,
        routes::queues::junit_xml,
        routes::queues::get_task,
        routes::tests::list,
        routes::tests::runs,
        routes::tests::compare,
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
        routes::boards::list,
        routes::boards::get,
        routes::boards::update,
        routes::boards::health,
        routes::compat::status,
        routes::forge::receive,
        routes::forge::hooks,
        routes::forge::queue_deliveries,
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
        (name = "tests", description = "History: a test's runs, the tests list (flaky, failures, slowest), a queue compared with a base"),
        (name = "auth", description = "Dashboard sign-in, who am I, personal API tokens"),
        (name = "users", description = "User administration (admins only)"),
        (name = "boards", description = "Real boards on the workers' serial ports: status, health, maintenance, health checks"),
        (name = "operations", description = "Health, metrics and this document"),
        (name = "forges", description = "Forge webhooks that start queues, and the commit statuses and notifications sent back"),
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
