//! The pieces of the OpenAPI document that handlers name in their
//! `#[utoipa::path]`: path parameters, the error body narrowed to one
//! `code` per status ([`NotFoundError`], ...), and [`Authed`], the answers
//! every signed-in route can give (401, 429, 500, 503). The document itself
//! (`crate::openapi`) lists the handlers; the handlers import only this
//! module, so the two do not depend on each other.

use std::borrow::Cow;
use std::collections::BTreeMap;

use testarena_domain::api::{ErrorBody, ErrorCode, Queue, Task};
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::schema::{AllOfBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{IntoParams, IntoResponses, PartialSchema, ToResponse, ToSchema};

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
#[expect(
    clippy::large_enum_variant,
    reason = "a schema of the OpenAPI document only: never built"
)]
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
