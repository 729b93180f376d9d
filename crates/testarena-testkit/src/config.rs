//! A daemon's config file, written from a [`Setup`]: the keys a farm
//! varies, the repositories, and the target profiles at the end.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::farm::Setup;

/// What a config names besides the setup's knobs.
#[derive(Clone, Copy)]
pub(crate) struct Place<'a> {
    pub home: &'a Path,
    /// The `database` key: a SQLite path or a PostgreSQL URL.
    pub database: &'a str,
    pub port: u16,
    /// `(name, url)` of each repository; the first is the default.
    pub repos: &'a [(String, PathBuf)],
    /// The `[targets.*]` tables.
    pub targets: &'a str,
}

/// The TOML of the daemon whose worker id is `worker_id`.
pub(crate) fn render(setup: &Setup, place: &Place<'_>, worker_id: &str) -> String {
    // Paths and names are quoted as TOML basic strings.
    let q = |s: &str| format!("{s:?}");
    let mut text = format!(
        "# Written by testarena-testkit.\nhome = {home}\ndatabase = {database}\n\
         default_target = {target}\n\n[server]\nlisten = \"127.0.0.1:{port}\"\n",
        home = q(&place.home.to_string_lossy()),
        database = q(place.database),
        target = q(&setup.default_target),
        port = place.port,
    );
    if let Some(dir) = &setup.static_dir {
        let _ = writeln!(text, "static_dir = {}", q(&dir.to_string_lossy()));
    }
    let _ = write!(
        text,
        "\n[worker]\nid = {id}\nslots = {slots}\npoll_interval_ms = {poll}\n\
         test_timeout_s = {test}\nabort_grace_s = {grace}\nheartbeat_s = {heartbeat}\n\
         lost_after_s = {lost}\nretry_errors = {retry}\nbuild_cache_mib = {cache}\n",
        id = q(worker_id),
        slots = setup.slots,
        poll = setup.poll_interval_ms,
        test = setup.test_timeout_s,
        grace = setup.abort_grace_s,
        heartbeat = setup.heartbeat_s,
        lost = setup.lost_after_s,
        retry = setup.retry_errors,
        cache = setup.build_cache_mib,
    );
    for (name, url) in place.repos {
        let _ = write!(
            text,
            "\n[[repos]]\nname = {}\nurl = {}\n",
            q(name),
            q(&url.to_string_lossy())
        );
    }
    text.push('\n');
    text.push_str(place.targets);
    text
}
