//! `GET /api/v1/health` (no auth) and `GET /metrics` (Prometheus text).

use actix_web::{HttpResponse, web};
use testarena_domain::api::{self, Health};
use testarena_domain::store;

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::metrics;
use crate::schemas::Authed;
use crate::state::AppState;

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/api/v1/health").route(web::get().to(health)))
        .service(web::resource("/metrics").route(web::get().to(metrics)));
}

/// Health: `ok` with the workers, or 503 `degraded` when the database
/// cannot be reached.
#[utoipa::path(
    get,
    path = "/api/v1/health",
    operation_id = "health",
    tag = "operations",
    summary = "Is the app up, can it reach the database, which workers are alive",
    security(()),
    responses(
        (status = 200, description = "`ok`, with the workers", body = Health),
        (status = 503, description = "`degraded`: the database cannot be reached; `database` says why", body = Health),
    )
)]
async fn health(state: web::Data<AppState>) -> HttpResponse {
    let workers = state.db(|conn| Ok(store::list_workers(conn)?)).await;
    let version = env!("CARGO_PKG_VERSION").to_owned();
    match workers {
        Ok(workers) => HttpResponse::Ok().json(Health {
            status: "ok".into(),
            database: "ok".into(),
            workers: workers
                .into_iter()
                .map(|(w, running)| api::worker_info(&w, running))
                .collect(),
            version,
        }),
        Err(e) => {
            tracing::warn!(error = %e, "health: database unreachable");
            HttpResponse::ServiceUnavailable().json(Health {
                status: "degraded".into(),
                database: e.to_string(),
                workers: Vec::new(),
                version,
            })
        }
    }
}

/// Needs a user like every other route: scrape with a Bearer token.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "operations",
    summary = "Prometheus metrics",
    description = "Queues by status, run times, worker heartbeats, HTTP requests by route, \
        open event streams. Needs a user like every other route: scrape with a Bearer token.",
    responses(
        (status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain", body = String),
        Authed,
    )
)]
async fn metrics(state: web::Data<AppState>, _user: AuthUser) -> Result<HttpResponse, ApiError> {
    // Heartbeat ages on the database's clock, as the farm judges them.
    let (counts, workers, durations, sent, now) = state
        .db(|conn| {
            Ok((
                store::count_by_status(conn)?,
                store::list_workers(conn)?,
                store::duration_stats(conn)?,
                store::deliveries::delivery_counts(conn)?,
                testarena_domain::db::db_now(conn).map_err(store::StoreError::from)?,
            ))
        })
        .await?;
    let farm = metrics::Farm {
        counts,
        workers,
        durations,
        now,
    };
    let mut out = metrics::render(&farm, &state.metrics);
    out.push_str(&crate::forge::metrics(&sent));
    out.push_str(&crate::boards::metrics(&state).await?);
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(out))
}
