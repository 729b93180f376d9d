//! The routes, one module per resource; each registers itself with `config`.

pub mod boards;
pub mod compat;
pub mod forge;
pub mod health;
pub mod logs;
pub mod queues;
pub mod session;
pub mod settings;
pub mod tests;
pub mod tokens;
pub mod users;

use actix_web::web;

/// Registers every API route.
pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.configure(health::config)
        .configure(session::config)
        .configure(settings::config)
        .configure(queues::config)
        .configure(tests::config)
        .configure(logs::config)
        .configure(tokens::config)
        .configure(users::config)
        .configure(boards::config)
        .configure(forge::config)
        .configure(compat::config);
}
