//! TestArena's domain, shared by the API server (`testarena-app`), the worker
//! (`testarena-worker`) and the CLI (`testarena`).
//!
//! It owns everything both daemons must agree on: the database schema and its
//! embedded migrations, the r2d2 pool, the store (all SQL lives in [`store`]),
//! the status machine, configuration, validation of user input, password and
//! token hashing, the scenario XML parser, the git mirror and the JSON types of
//! the REST API. It speaks no HTTP and starts no process.

pub mod api;
pub mod config;
pub mod db;
pub mod git;
pub mod junit;
pub mod models;
pub mod paths;
pub mod repo_config;
pub mod scenario;
pub mod schema;
pub mod secret;
pub mod status;
pub mod store;
pub mod telemetry;
pub mod validate;
