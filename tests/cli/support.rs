//! A TestArena on loopback for the CLI's tests: the real `testarena-app`
//! and `testarena-worker` on a temp home with the lx106 firmware fixture,
//! and the real `testarena` binary run against them with a config
//! directory of its own (never the user's).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

pub use crate::run::{Cli, Output};

pub const ADMIN: &str = "admin";
pub const PASSWORD: &str = "cli test password";
/// Long enough for a fixture queue (build and boot take seconds).
pub const DEADLINE: Duration = Duration::from_secs(120);

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A daemon of this build (`target/debug/<name>`), built by
/// `cargo build --workspace --bins`.
fn daemon_bin(name: &str) -> PathBuf {
    let cli = PathBuf::from(env!("CARGO_BIN_EXE_testarena"));
    let path = cli.with_file_name(name);
    assert!(
        path.exists(),
        "{} is missing: build the daemons first (cargo build --workspace --bins)",
        path.display()
    );
    path
}

fn require_tools() {
    for tool in ["qemu-system-xtensa", "xtensa-lx106-elf-gcc", "make", "git"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            found,
            "{tool} is not installed: run scripts/test.sh, which installs it"
        );
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Polls `f` until it returns `Some`, or panics after `timeout`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A child in its own process group, killed with the group when dropped.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let pgid = Pid::from_raw(self.0.id() as i32);
        let _ = killpg(pgid, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && matches!(self.0.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = killpg(pgid, Signal::SIGKILL);
        let _ = self.0.wait();
    }
}

pub struct Farm {
    // Dropped in this order: the worker stops before the app, both before
    // their folder goes.
    worker: Option<Daemon>,
    app: Option<Daemon>,
    pub dir: tempfile::TempDir,
    config: PathBuf,
    pub url: String,
    /// An admin's API token.
    pub token: String,
}

impl Farm {
    pub fn start() -> Self {
        require_tools();
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let repo = dir.path().join("firmware.git");
        let made = Command::new("bash")
            .arg(repo_root().join("tests/fixtures/make-repo.sh"))
            .arg(&repo)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(made.success(), "make-repo.sh failed");
        let port = free_port();
        let config = dir.path().join("config.toml");
        let text = format!(
            r#"home = "{home}"
default_target = "lx106"

[server]
listen = "127.0.0.1:{port}"
static_dir = "{static_dir}"

[worker]
id = "cli-worker"
slots = 2
poll_interval_ms = 50
test_timeout_s = 60
abort_grace_s = 1
heartbeat_s = 1
lost_after_s = 5

[[repos]]
name = "firmware"
url = "{repo}"

[targets.lx106]
build = ["make", "-C", "{{workspace}}", "BUILD_DIR={{build_dir}}"]
qemu = ["qemu-system-xtensa", "-M", "sim", "-cpu", "lx106", "-semihosting",
        "-nographic", "-serial", "none", "-monitor", "none", "-no-reboot",
        "-kernel", "{{build_dir}}/firmware.elf"]
fail_on = ["Guru Meditation Error", "abort() was called", "assert failed:", "Rebooting..."]
"#,
            home = home.display(),
            static_dir = repo_root().join("static").display(),
            repo = repo.display(),
        );
        std::fs::write(&config, text).unwrap();
        let app_cmd = |args: &[&str], stdin: &str| {
            let mut child = Command::new(daemon_bin("testarena-app"))
                .arg("--config")
                .arg(&config)
                .args(args)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(stdin.as_bytes())
                .unwrap();
            assert!(
                child.wait().unwrap().success(),
                "testarena-app {args:?} failed"
            );
        };
        app_cmd(&["migrate"], "");
        app_cmd(
            &["user", "add", ADMIN, "--admin", "--password-stdin"],
            &format!("{PASSWORD}\n"),
        );
        let url = format!("http://127.0.0.1:{port}");
        let mut farm = Farm {
            worker: None,
            app: None,
            dir,
            config,
            url,
            token: String::new(),
        };
        farm.start_app();
        let probe = farm.anonymous();
        farm.worker = Some(farm.daemon("testarena-worker"));
        wait_for(Duration::from_secs(30), "the worker to register", || {
            let health = probe.run(&["health", "--json"]).json();
            (!health["workers"].as_array()?.is_empty()).then_some(())
        });
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
        std::fs::remove_dir_all(farm.dir.path().join("xdg")).unwrap();
        farm
    }

    /// Starts `testarena-app` or `testarena-worker`, logging to `<name>.log`.
    fn daemon(&self, name: &str) -> Daemon {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("{name}.log")))
            .unwrap();
        let mut cmd = Command::new(daemon_bin(name));
        cmd.arg("--config")
            .arg(&self.config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        Daemon(cmd.spawn().unwrap())
    }

    fn start_app(&mut self) {
        self.app = Some(self.daemon("testarena-app"));
        let probe = self.anonymous();
        wait_for(Duration::from_secs(30), "the app to answer", || {
            probe.run(&["health"]).ok().then_some(())
        });
    }

    /// Kills the app at once (open streams break, as in a crash) and
    /// starts it again.
    pub fn crash_and_restart_app(&mut self) {
        if let Some(mut app) = self.app.take() {
            let _ = killpg(Pid::from_raw(app.0.id() as i32), Signal::SIGKILL);
            let _ = app.0.wait();
        }
        self.start_app();
    }

    /// The CLI as the admin (by `TESTARENA_TOKEN`).
    pub fn cli(&self) -> Cli {
        Cli::new(self.dir.path(), &self.url, Some(&self.token))
    }

    /// The CLI with no token: what `login` saves is what it uses.
    pub fn anonymous(&self) -> Cli {
        Cli::new(self.dir.path(), &self.url, None)
    }
}
