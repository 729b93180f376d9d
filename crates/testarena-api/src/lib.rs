//! `testarena-app`: TestArena's REST API, the dashboard's files, auth, logs
//! and live events (DESIGN sections 6 and 7). It never runs builds: the
//! worker does, and the database is the only channel between the two.
//!
//! [`create_app`] builds the actix-web application; `main` and the tests
//! both use it.

pub mod auth;
pub mod boards;
pub mod credentials;
pub mod dashboard;
pub mod error;
pub mod forge;
pub mod history;
pub mod logs;
pub mod metrics;
pub mod openapi;
pub mod queues;
pub mod routes;
pub mod schemas;
pub mod serve;
pub mod state;
pub mod submit;
pub mod subsets;

use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody as _};
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::{Method, header};
use actix_web::{App, HttpRequest, web};
use futures_util::FutureExt as _;
use testarena_domain::api::{ErrorBody, ErrorCode};

pub use crate::error::ApiError;

pub use crate::state::AppState;

/// The application: every route (each `GET` answering `HEAD` too), the
/// extractor error handlers, request logging and metrics, and the
/// dashboard's files.
pub fn create_app(
    state: web::Data<AppState>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<BoxBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let limit = state.config.server.max_body_bytes;
    let static_dir = state.config.server.static_dir.clone();
    App::new()
        .app_data(state.clone())
        .app_data(web::PayloadConfig::new(limit))
        .app_data(
            web::JsonConfig::default()
                .limit(limit)
                .error_handler(json_error),
        )
        .app_data(web::QueryConfig::default().error_handler(query_error))
        .app_data(web::PathConfig::default().error_handler(path_error))
        .wrap_fn(move |mut req, srv| {
            let started = Instant::now();
            let method = req.method().to_string();
            // HEAD is GET without the body: every GET route answers it, with
            // the headers GET would send (the server leaves the body out).
            if req.method() == Method::HEAD {
                req.head_mut().method = Method::GET;
            }
            let state = state.clone();
            actix_web::dev::Service::call(srv, req).map(move |result| {
                result.map(|res| {
                    let res = json_errors(res);
                    let route = res
                        .request()
                        .match_pattern()
                        .unwrap_or_else(|| "unmatched".into());
                    let status = res.status().as_u16();
                    state.metrics.request(&method, &route, status);
                    tracing::info!(
                        target: "testarena::http",
                        %method, path = %res.request().path(), %route, status,
                        ms = started.elapsed().as_secs_f64() * 1000.0,
                        "request"
                    );
                    res
                })
            })
        })
        .configure(routes::config)
        .configure(openapi::config)
        .configure(|cfg| dashboard::config(cfg, static_dir))
        .default_service(web::to(not_found))
}

async fn not_found(req: HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!(
        "no route {} {}",
        req.method(),
        req.path()
    )))
}

/// Gives every error answer the JSON error body, including those actix
/// makes itself (405, a static file's 404, ...).
fn json_errors(res: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
    let status = res.status();
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return res;
    }
    let code = match status.as_u16() {
        401 => ErrorCode::Unauthorized,
        403 => ErrorCode::Forbidden,
        404 => ErrorCode::NotFound,
        409 => ErrorCode::Conflict,
        413 => ErrorCode::PayloadTooLarge,
        422 => ErrorCode::ValidationFailed,
        429 => ErrorCode::RateLimited,
        503 => ErrorCode::Unavailable,
        s if s >= 500 => ErrorCode::Internal,
        _ => ErrorCode::BadRequest,
    };
    let message = status.canonical_reason().unwrap_or("error").to_owned();
    res.map_body(|head, body| {
        let _ = body.try_into_bytes();
        head.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/json"),
        );
        head.headers_mut().remove(header::CONTENT_LENGTH);
        let json = serde_json::to_vec(&ErrorBody::new(code, message, None)).unwrap_or_default();
        BoxBody::new(json)
    })
}

fn json_error(err: JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let api = match &err {
        JsonPayloadError::Overflow { limit }
        | JsonPayloadError::OverflowKnownLength { limit, .. } => {
            ApiError::PayloadTooLarge(format!("the body is over the limit of {limit} bytes"))
        }
        JsonPayloadError::ContentType => {
            ApiError::BadRequest("send the body as JSON with Content-Type: application/json".into())
        }
        JsonPayloadError::Deserialize(e) => ApiError::BadRequest(format!("invalid JSON body: {e}")),
        other => ApiError::BadRequest(format!("invalid body: {other}")),
    };
    api.into()
}

fn query_error(err: QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::BadRequest(format!("invalid query string: {err}")).into()
}

fn path_error(err: PathError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::BadRequest(format!("invalid path: {err}")).into()
}
