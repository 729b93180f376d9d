//! `ApiError`: every failure a handler can answer with, mapped to a status
//! code and the JSON error body of DESIGN section 6.
//!
//! A 5xx logs its cause once, here, and shows the client only a code and a
//! generic message. Database contention is a 503 with `Retry-After`.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError, web};
use testarena_domain::api::{ErrorBody, ErrorCode};
use testarena_domain::store::StoreError;
use testarena_domain::validate::ValidationError;

/// A JSON body that is parsed only after authentication: handlers take
/// `AuthUser` first and this second, so an anonymous request with a bad
/// body answers 401, not 400. Unwrap it with `?`.
pub type Body<T> = Result<web::Json<T>, actix_web::Error>;

/// What a handler answers when it cannot do what was asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{message}")]
    Validation {
        message: String,
        field: Option<String>,
    },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    RateLimited(String),
    /// The database stayed busy; the client should retry.
    #[error("{0}")]
    Unavailable(String),
    /// The database cannot be reached (PostgreSQL down or cut off): 503
    /// `unavailable` with Retry-After until it is back.
    #[error("{0}")]
    Unreachable(String),
    /// The disk under `home` is full: nothing was stored; retrying helps
    /// once an operator frees space.
    #[error("{0}")]
    DiskFull(String),
    /// A bug or a broken environment: logged, never shown.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation {
            message: message.into(),
            field: Some(field.into()),
        }
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self::Internal(cause.to_string())
    }

    /// A failed file operation under `home`: [`ApiError::DiskFull`] when
    /// the disk (or the user's quota) is full, else internal.
    pub fn io(what: impl std::fmt::Display, e: &std::io::Error) -> Self {
        use std::io::ErrorKind;
        if matches!(e.kind(), ErrorKind::StorageFull | ErrorKind::QuotaExceeded) {
            Self::DiskFull(format!("{what}: {e}"))
        } else {
            Self::Internal(format!("{what}: {e}"))
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            Self::BadRequest(_) => ErrorCode::BadRequest,
            Self::Validation { .. } => ErrorCode::ValidationFailed,
            Self::Unauthorized(_) => ErrorCode::Unauthorized,
            Self::Forbidden(_) => ErrorCode::Forbidden,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::Conflict(_) => ErrorCode::Conflict,
            Self::PayloadTooLarge(_) => ErrorCode::PayloadTooLarge,
            Self::RateLimited(_) => ErrorCode::RateLimited,
            Self::Unavailable(_) | Self::Unreachable(_) | Self::DiskFull(_) => {
                ErrorCode::Unavailable
            }
            Self::Internal(_) => ErrorCode::Internal,
        }
    }
}

/// Seconds a client should wait before retrying a 503 or a 429.
const RETRY_AFTER_S: &str = "1";

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) | Self::Unreachable(_) | Self::DiskFull(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let (message, field) = match self {
            Self::Internal(cause) => {
                tracing::error!(error = %cause, "internal error");
                ("internal error; see the server log".to_owned(), None)
            }
            Self::Unavailable(cause) => {
                tracing::warn!(error = %cause, "database busy");
                ("the database is busy; retry shortly".to_owned(), None)
            }
            Self::Unreachable(cause) => {
                tracing::warn!(error = %cause, "database unreachable");
                (
                    "the database is unreachable; retry shortly".to_owned(),
                    None,
                )
            }
            Self::DiskFull(cause) => {
                tracing::error!(error = %cause, "disk full");
                (
                    "the server's disk is full; retry once an operator has freed space".to_owned(),
                    None,
                )
            }
            Self::Validation { message, field } => (message.clone(), field.clone()),
            other => (other.to_string(), None),
        };
        let mut response = HttpResponse::build(self.status_code());
        if matches!(
            self,
            Self::Unavailable(_) | Self::Unreachable(_) | Self::DiskFull(_) | Self::RateLimited(_)
        ) {
            response.insert_header((header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_S)));
        }
        if matches!(self, Self::Unauthorized(_)) {
            // No `Basic` challenge: browsers would pop up their own dialog
            // over the dashboard's sign-in page.
            response.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        response.json(ErrorBody::new(self.code(), message, field))
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { what, id } if id.is_empty() => {
                Self::NotFound(format!("{what} not found"))
            }
            StoreError::NotFound { what, id } => Self::NotFound(format!("{what} {id:?} not found")),
            StoreError::Conflict(m) => Self::Conflict(m),
            StoreError::Forbidden(m) => Self::Forbidden(m),
            StoreError::Illegal(t) => Self::Conflict(t.to_string()),
            StoreError::Busy(m) => Self::Unavailable(m),
            StoreError::Full(m) => Self::DiskFull(m),
            StoreError::Unavailable(m) => Self::Unreachable(m),
            StoreError::Fenced(m) => Self::Conflict(m),
            StoreError::Db(e) => Self::Internal(e.to_string()),
        }
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        Self::Validation {
            message: e.to_string(),
            field: Some(e.field),
        }
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        Self::Internal(e.to_string())
    }
}

/// Extractor errors: the handlers in `lib.rs` already made them `ApiError`s.
impl From<actix_web::Error> for ApiError {
    fn from(e: actix_web::Error) -> Self {
        match e.as_error::<ApiError>() {
            Some(api) => api.clone(),
            None => Self::BadRequest(e.to_string()),
        }
    }
}
