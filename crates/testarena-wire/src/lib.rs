//! The JSON types of TestArena's REST API (DESIGN section 6) and the
//! statuses they carry. The app, the CLI and the tests share this one
//! definition; it needs neither the database nor git, so the CLI builds
//! without them.

pub mod api;
pub mod attempts;
pub mod boards;
pub mod forge;
pub mod history;
pub mod status;
