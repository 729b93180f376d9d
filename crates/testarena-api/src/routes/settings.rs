//! `GET /api/v1/config`: the parts of the farm's configuration a client
//! needs to offer a submission (repositories by name, targets, the default
//! target). Nothing secret: no URLs, keys or commands.

use actix_web::{HttpResponse, web};
use testarena_domain::api::{ClientConfig, NamedItem};

use crate::auth::AuthUser;
use crate::schemas::Authed;
use crate::state::AppState;

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/api/v1/config").route(web::get().to(client_config)));
}

/// What a submission form offers.
#[utoipa::path(
    get,
    path = "/api/v1/config",
    operation_id = "client_config",
    tag = "queues",
    summary = "What a submission may name: repositories, targets, the default target",
    description = "The repositories by name (the one a submission without `repo` gets comes \
        first) and the targets by name. Nothing else of the configuration is shown.",
    responses(
        (status = 200, description = "Repositories and targets", body = ClientConfig),
        Authed,
    )
)]
async fn client_config(state: web::Data<AppState>, _user: AuthUser) -> HttpResponse {
    let config = &state.config;
    let named = |name: &str| NamedItem {
        name: name.to_owned(),
    };
    HttpResponse::Ok().json(ClientConfig {
        repos: config.repos.iter().map(|r| named(&r.name)).collect(),
        targets: config.targets.keys().map(|t| named(t)).collect(),
        default_target: config.default_target.clone(),
    })
}
