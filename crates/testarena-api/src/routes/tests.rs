//! History (DESIGN section 11): a test's runs, the tests list, and a
//! queue compared with a base. Thin handlers over the history service
//! (`crate::history`).

use actix_web::{HttpResponse, web};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::Deserialize;
use testarena_domain::api::{Comparison, Page, TestRun, TestSummary};
use testarena_domain::store::{self, HistoryFilter, TestSort, TestsFilter};

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::history;
use crate::schemas::{Authed, BadRequestError, IdParam, NotFoundError, ValidationFailedError};
use crate::state::AppState;

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/api/v1/tests").route(web::get().to(list)))
        .service(web::resource("/api/v1/tests/history").route(web::get().to(runs)))
        .service(web::resource("/api/v1/queues/{id}/compare").route(web::get().to(compare)));
}

type Data = web::Data<AppState>;

/// A required, non-empty query value.
fn required(field: &str, value: Option<String>) -> Result<String, ApiError> {
    value
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::validation(field, "required"))
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

fn limit(value: Option<i64>, max: i64) -> Result<i64, ApiError> {
    let limit = value.unwrap_or(50);
    if !(1..=max).contains(&limit) {
        return Err(ApiError::validation(
            "limit",
            format!("must be between 1 and {max}"),
        ));
    }
    Ok(limit)
}

fn cursor<T: std::str::FromStr>(value: Option<String>) -> Result<Option<T>, ApiError> {
    non_empty(value)
        .map(|s| {
            s.parse::<T>()
                .map_err(|_| ApiError::validation("before", "not a cursor from a previous page"))
        })
        .transpose()
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// The repository (its name in the config).
    repo: Option<String>,
    /// The scenario's path.
    scenario: Option<String>,
    /// The test case's name (`unit`, `unit/test_fib_20`).
    name: Option<String>,
    /// Only runs on this branch.
    branch: Option<String>,
    /// Only runs for this target.
    target: Option<String>,
    /// Page size, default 50.
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    /// The `next` of the previous page.
    #[param(pattern = r"^([0-9]+)?$")]
    before: Option<String>,
}

/// `GET /api/v1/tests/history`.
#[utoipa::path(
    get,
    path = "/api/v1/tests/history",
    operation_id = "test_history",
    tag = "tests",
    summary = "A test's runs, newest first",
    description = "The runs of one test (repository, scenario, name), newest first, \
        optionally on one branch and target. Pass `next` as `before` for the following page.",
    params(HistoryQuery),
    responses(
        (status = 200, description = "A page of runs", body = Page<TestRun>),
        (status = 400, description = "An unknown query parameter, or a `limit` that is not a number", body = BadRequestError),
        (status = 422, description = "`repo`, `scenario` or `name` missing; a bad `limit` or `before`", body = ValidationFailedError),
        Authed,
    )
)]
pub async fn runs(
    state: Data,
    _user: AuthUser,
    query: web::Query<HistoryQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let filter = HistoryFilter {
        repo: required("repo", q.repo)?,
        scenario: required("scenario", q.scenario)?,
        name: required("name", q.name)?,
        branch: non_empty(q.branch),
        target: non_empty(q.target),
        before: cursor(q.before)?,
        limit: limit(q.limit, store::MAX_HISTORY_PAGE)?,
    };
    Ok(HttpResponse::Ok().json(history::history(&state, filter).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TestsQuery {
    /// Only tests of this repository.
    repo: Option<String>,
    /// Only runs on this branch.
    branch: Option<String>,
    /// Tests run since this time (RFC 3339 or `YYYY-MM-DD`); default 30 days ago.
    since: Option<String>,
    /// `flaky` (default), `failures`, `slowest` or `name`.
    #[param(pattern = "^(flaky|failures|slowest|name)?$")]
    sort: Option<String>,
    /// Page size, default 50.
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    /// The `next` of the previous page.
    #[param(pattern = r"^([0-9]+)?$")]
    before: Option<String>,
}

fn since(value: Option<String>) -> Result<NaiveDateTime, ApiError> {
    let Some(s) = non_empty(value) else {
        return Ok(history::default_since());
    };
    if let Ok(t) = DateTime::parse_from_rfc3339(&s) {
        return Ok(t.with_timezone(&Utc).naive_utc());
    }
    NaiveDate::parse_from_str(&s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .ok_or_else(|| ApiError::validation("since", "an RFC 3339 time or YYYY-MM-DD"))
}

/// `GET /api/v1/tests`.
#[utoipa::path(
    get,
    path = "/api/v1/tests",
    operation_id = "list_tests",
    tag = "tests",
    summary = "The tests run in a window",
    description = "One row per test (repository, scenario, name) run since `since`: runs, \
        passes, failures and pass rate in the window; `flaky`, `flips`, `median_ms` and the \
        last verdict from its last 20 runs per branch and target. Sorted by `sort`; pass \
        `next` as `before` for the following page.",
    params(TestsQuery),
    responses(
        (status = 200, description = "A page of tests", body = Page<TestSummary>),
        (status = 400, description = "An unknown query parameter, or a `limit` that is not a number", body = BadRequestError),
        (status = 422, description = "A bad `since`, `sort`, `limit` or `before`", body = ValidationFailedError),
        Authed,
    )
)]
pub async fn list(
    state: Data,
    _user: AuthUser,
    query: web::Query<TestsQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let sort = match non_empty(q.sort) {
        None => TestSort::default(),
        Some(s) => s
            .parse::<TestSort>()
            .map_err(|e| ApiError::validation("sort", e))?,
    };
    let filter = TestsFilter {
        repo: non_empty(q.repo),
        branch: non_empty(q.branch),
        since: since(q.since)?,
        sort,
        offset: cursor::<usize>(q.before)?.unwrap_or(0),
        limit: limit(q.limit, store::MAX_TESTS_PAGE)?,
    };
    Ok(HttpResponse::Ok().json(history::tests(&state, filter).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CompareQuery {
    /// The queue to compare with; default: the newest earlier queue of the
    /// same repository, branch and target that ran to a verdict.
    with: Option<String>,
}

/// `GET /api/v1/queues/{id}/compare`.
#[utoipa::path(
    get,
    path = "/api/v1/queues/{id}/compare",
    operation_id = "compare_queue",
    tag = "tests",
    summary = "A queue compared with a base queue",
    description = "Its tests that failed anew, were fixed, still fail, are flaky or slower, \
        and those added or removed, against `with` or by default the newest earlier queue of \
        the same repository, branch and target that passed, failed or errored.",
    params(IdParam, CompareQuery),
    responses(
        (status = 200, description = "The comparison", body = Comparison),
        (status = 400, description = "An unknown query parameter", body = BadRequestError),
        (status = 404, description = "No such queue", body = NotFoundError),
        (status = 422, description = "No queue `with`", body = ValidationFailedError),
        Authed,
    )
)]
pub async fn compare(
    state: Data,
    _user: AuthUser,
    id: web::Path<String>,
    query: web::Query<CompareQuery>,
) -> Result<HttpResponse, ApiError> {
    let with = non_empty(query.into_inner().with);
    Ok(HttpResponse::Ok().json(history::compare(&state, &id, with).await?))
}
