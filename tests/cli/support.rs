//! The CLI's farm: the test kit's lx106 farm, and the real `testarena`
//! binary run against it with a config directory of its own (never the
//! user's), signed in the way `testarena login` signs in.

use std::path::PathBuf;
use std::time::Duration;

use testarena_testkit::Setup;
pub use testarena_testkit::wait_for;

pub use super::run::{Cli, Output};

pub const ADMIN: &str = "admin";
pub const PASSWORD: &str = "cli test password";
/// Long enough for a fixture queue (build and boot take seconds).
pub const DEADLINE: Duration = Duration::from_secs(120);

pub struct Farm {
    kit: testarena_testkit::Farm,
    /// The farm's directory (the CLI's `HOME` and `XDG_CONFIG_HOME` are
    /// under it).
    pub dir: PathBuf,
    pub url: String,
    /// An admin's API token, made by `testarena login`.
    pub token: String,
}

impl Farm {
    pub fn start() -> Self {
        let kit = testarena_testkit::Farm::start(Setup {
            workers: vec!["cli-worker".into()],
            slots: 2,
            poll_interval_ms: 50,
            test_timeout_s: 60,
            abort_grace_s: 1,
            heartbeat_s: 1,
            lost_after_s: 5,
            admin: (ADMIN.into(), PASSWORD.into()),
            ..Setup::lx106()
        });
        let mut farm = Farm {
            dir: kit.dir.clone(),
            url: kit.base.clone(),
            kit,
            token: String::new(),
        };
        let probe = farm.anonymous();
        let health = probe.run(&["health", "--json"]).json();
        assert!(
            !health["workers"].as_array().unwrap().is_empty(),
            "the CLI sees the worker: {health}"
        );
        // An admin token, made the way `login` makes one.
        let out = probe.run_input(
            &["login", "--user", ADMIN, "--password-stdin", "--json"],
            &format!("{PASSWORD}\n"),
        );
        assert!(out.ok(), "login: {out:?}");
        let saved = std::fs::read_to_string(probe.config_file()).unwrap();
        farm.token = saved
            .lines()
            .find_map(|l| l.strip_prefix("token = "))
            .unwrap()
            .trim_matches('"')
            .to_owned();
        std::fs::remove_dir_all(farm.dir.join("xdg")).unwrap();
        farm
    }

    /// Kills the app at once (open streams break, as in a crash) and
    /// starts it again.
    pub fn crash_and_restart_app(&mut self) {
        self.kit.crash_app();
        self.kit.start_app();
    }

    /// The CLI as the admin (by `TESTARENA_TOKEN`).
    pub fn cli(&self) -> Cli {
        Cli::new(&self.dir, &self.url, Some(&self.token))
    }

    /// The CLI with no token: what `login` saves is what it uses.
    pub fn anonymous(&self) -> Cli {
        Cli::new(&self.dir, &self.url, None)
    }
}
