//! The harness: a whole TestArena on loopback made of real processes.
//!
//! A [`Farm`] is a temp directory holding a git repository (the lx106
//! fixture or a small one of `<run>` scenarios), a `home` (optionally a
//! size-limited tmpfs), one config per daemon, and the captured output of
//! every daemon it starts (`logs/`, appended across restarts). It speaks to
//! the app over HTTP with an admin's API token and keeps every answer it
//! got in `logs/answers.log`, so that [`Farm::check_secrets`] can look for
//! passwords, tokens and the cookie key in everything the farm ever said.
//! Dropping it kills what it started and anything its queues left behind.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde_json::{Value, json};

use crate::probe::{self, processes, read_lossy, wait_for};
use crate::repo::Repo;

pub const ADMIN: &str = "admin";
/// The admin's password: long and unlikely, so that finding it anywhere is
/// a leak and not a coincidence.
pub const PASSWORD: &str = "faults-admin-pw-7Qx9Lm2Vz";

/// What a worker logs once it is registered.
const REGISTERED: &str = "worker registered";
/// How long a request may take before the harness gives up on it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Tests that measure latency take this lock exclusively; the others share
/// it, so no queue storm runs while a p99 is measured.
static QUIET: RwLock<()> = RwLock::new(());

pub fn shared() -> RwLockReadGuard<'static, ()> {
    QUIET
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub fn exclusive() -> RwLockWriteGuard<'static, ()> {
    QUIET
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The directory the binaries of this build are in (`target/debug`).
fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/debug/deps/faults-<hash> -> target/debug
    let path = exe.parent().and_then(Path::parent).unwrap().join(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace's binaries first (cargo build --workspace --bins)",
        path.display()
    );
    path
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Fails with a clear message when a tool the test needs is missing.
pub fn require_tools(tools: &[&str]) {
    for tool in tools {
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

/// Which repository the farm builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepoKind {
    /// `tests/fixtures/make-repo.sh`: the lx106 firmware, one branch per
    /// behaviour; target `lx106` (real make and QEMU).
    Fixture,
    /// A few `<run>` scenarios (see [`Repo::small`]); targets whose builds
    /// are shell commands, `noop` by default.
    Small,
}

/// What a farm is made of.
#[derive(Debug, Clone)]
pub struct Setup {
    pub repo: RepoKind,
    /// Extra `[targets.*]` tables, TOML.
    pub targets: String,
    pub default_target: String,
    /// One worker process per id.
    pub workers: Vec<String>,
    pub start_workers: bool,
    pub slots: u32,
    pub poll_interval_ms: u64,
    pub heartbeat_s: u64,
    pub lost_after_s: u64,
    pub abort_grace_s: u64,
    pub rust_log: String,
    /// An existing directory to use as `home` (a tmpfs), else `<dir>/home`.
    pub home: Option<PathBuf>,
}

impl Setup {
    pub fn small() -> Self {
        Self {
            repo: RepoKind::Small,
            targets: String::new(),
            default_target: "noop".into(),
            workers: vec!["w1".into()],
            start_workers: true,
            slots: 2,
            poll_interval_ms: 20,
            heartbeat_s: 1,
            lost_after_s: 30,
            abort_grace_s: 2,
            rust_log: "info".into(),
            home: None,
        }
    }

    pub fn fixture() -> Self {
        Self {
            repo: RepoKind::Fixture,
            default_target: "lx106".into(),
            slots: 1,
            ..Self::small()
        }
    }
}

/// One HTTP answer.
#[derive(Debug, Clone)]
pub struct Resp {
    /// 0 when no answer came (connection refused or reset).
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: String,
    pub took: Duration,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// How a request signs in.
#[derive(Debug, Clone, Copy)]
pub enum Auth<'a> {
    None,
    Bearer(&'a str),
    Basic(&'a str, &'a str),
}

/// A running farm. See the module documentation.
pub struct Farm {
    pub dir: tempfile::TempDir,
    pub home: PathBuf,
    pub repo: Repo,
    pub base: String,
    pub setup: Setup,
    /// The admin's API token.
    pub token: String,
    agent: ureq::Agent,
    app: Option<Child>,
    workers: Vec<Option<Child>>,
    secrets: Mutex<Vec<String>>,
    answers: Mutex<File>,
}

impl Farm {
    pub fn start(setup: Setup) -> Farm {
        require_tools(&["git", "sqlite3"]);
        if setup.repo == RepoKind::Fixture {
            require_tools(&["qemu-system-xtensa", "xtensa-lx106-elf-gcc", "make"]);
        }
        let dir = tempfile::Builder::new()
            .prefix("faults-")
            .tempdir()
            .unwrap();
        let home = setup
            .home
            .clone()
            .unwrap_or_else(|| dir.path().join("home"));
        std::fs::create_dir_all(dir.path().join("logs")).unwrap();
        let repo = match setup.repo {
            RepoKind::Fixture => Repo::fixture(&dir.path().join("repo")),
            RepoKind::Small => Repo::small(&dir.path().join("repo")),
        };
        let port = free_port();
        let answers = File::create(dir.path().join("logs/answers.log")).unwrap();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(REQUEST_TIMEOUT))
            .max_idle_connections_per_host(64)
            .build()
            .into();
        let workers = setup.workers.iter().map(|_| None).collect();
        let mut farm = Farm {
            base: format!("http://127.0.0.1:{port}"),
            repo,
            home,
            agent,
            app: None,
            workers,
            secrets: Mutex::new(vec![PASSWORD.to_owned()]),
            answers: Mutex::new(answers),
            token: String::new(),
            setup,
            dir,
        };
        farm.write_configs(port);
        farm.app_command(&["migrate"], None);
        farm.app_command(
            &["user", "add", ADMIN, "--admin", "--password-stdin"],
            Some(PASSWORD),
        );
        farm.start_app();
        farm.token = farm.new_token(ADMIN, PASSWORD);
        if farm.setup.start_workers {
            for i in 0..farm.workers.len() {
                farm.start_worker(i);
            }
        }
        farm
    }

    fn write_configs(&self, port: u16) {
        let s = &self.setup;
        let targets = match s.repo {
            RepoKind::Fixture => {
                r#"
[targets.lx106]
build = ["make", "-C", "{workspace}", "BUILD_DIR={build_dir}"]
qemu = ["qemu-system-xtensa", "-M", "sim", "-cpu", "lx106", "-semihosting",
        "-nographic", "-serial", "none", "-monitor", "none", "-no-reboot",
        "-kernel", "{build_dir}/firmware.elf"]
fail_on = ["Guru Meditation Error", "abort() was called", "assert failed:", "Rebooting..."]
"#
            }
            RepoKind::Small => {
                r#"
[targets.noop]
build = ["true"]
qemu = ["false"]
"#
            }
        };
        for (name, id) in std::iter::once(("app", "app"))
            .chain(s.workers.iter().map(|id| ("worker", id.as_str())))
        {
            let text = format!(
                r#"home = "{home}"
default_target = "{default_target}"

[server]
listen = "127.0.0.1:{port}"
static_dir = "{static_dir}"

[worker]
id = "{id}"
slots = {slots}
poll_interval_ms = {poll}
test_timeout_s = 120
abort_grace_s = {grace}
heartbeat_s = {heartbeat}
lost_after_s = {lost}

[[repos]]
name = "firmware"
url = "{repo}"
{targets}{extra}"#,
                home = self.home.display(),
                default_target = s.default_target,
                static_dir = repo_root().join("static").display(),
                slots = s.slots,
                poll = s.poll_interval_ms,
                grace = s.abort_grace_s,
                heartbeat = s.heartbeat_s,
                lost = s.lost_after_s,
                repo = self.repo.path.display(),
                extra = s.targets,
            );
            let file = if name == "app" {
                "app.toml".to_owned()
            } else {
                format!("worker-{id}.toml")
            };
            std::fs::write(self.dir.path().join(file), text).unwrap();
        }
    }

    pub fn log_path(&self, name: &str) -> PathBuf {
        self.dir.path().join("logs").join(name)
    }

    pub fn db_path(&self) -> PathBuf {
        self.home.join("testarena.db")
    }

    /// Runs `testarena-app <args>` to its end, `stdin` on its input.
    pub fn app_command(&self, args: &[&str], stdin: Option<&str>) {
        let mut child = Command::new(bin("testarena-app"))
            .arg("--config")
            .arg(self.dir.path().join("app.toml"))
            .args(args)
            .env("RUST_LOG", &self.setup.rust_log)
            .stdin(Stdio::piped())
            .stdout(self.log_file("app.log"))
            .stderr(self.log_file("app.log"))
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            writeln!(input, "{text}").unwrap();
        }
        drop(input);
        assert!(child.wait().unwrap().success(), "testarena-app {args:?}");
    }

    fn log_file(&self, name: &str) -> File {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(name))
            .unwrap()
    }

    fn daemon(&self, binary: &str, config: &str, log: &str) -> Child {
        let mut cmd = Command::new(bin(binary));
        cmd.arg("--config")
            .arg(self.dir.path().join(config))
            .env("RUST_LOG", &self.setup.rust_log)
            .env_remove("TESTARENA_CONFIG")
            .env_remove("TESTARENA_HOME")
            .env_remove("TESTARENA_DATABASE")
            .env_remove("TESTARENA_LISTEN")
            .stdin(Stdio::null())
            .stdout(self.log_file(log))
            .stderr(self.log_file(log));
        // Its own group, so that dropping the farm can kill it all.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        cmd.spawn().unwrap()
    }

    pub fn start_app(&mut self) {
        assert!(self.app.is_none(), "the app runs already");
        self.app = Some(self.daemon("testarena-app", "app.toml", "app.log"));
        wait_for(Duration::from_secs(30), "the app to answer", || {
            (self
                .call_as(Auth::None, "GET", "/api/v1/health", None)
                .status
                == 200)
                .then_some(())
        });
    }

    pub fn app_pid(&self) -> i32 {
        self.app.as_ref().map(|c| c.id() as i32).unwrap()
    }

    /// Sends `signal` to the app and waits for it to exit.
    pub fn stop_app(&mut self, signal: Signal) -> ExitStatus {
        let mut child = self.app.take().unwrap();
        kill(Pid::from_raw(child.id() as i32), signal).unwrap();
        child.wait().unwrap()
    }

    pub fn start_worker(&mut self, i: usize) {
        assert!(self.workers[i].is_none(), "worker {i} runs already");
        let id = self.setup.workers[i].clone();
        let child = self.daemon(
            "testarena-worker",
            &format!("worker-{id}.toml"),
            &format!("worker-{id}.log"),
        );
        let log = format!("worker-{id}.log");
        let before = read_lossy(&self.log_path(&log)).matches(REGISTERED).count();
        self.workers[i] = Some(child);
        wait_for(Duration::from_secs(30), "the worker to register", || {
            let now = read_lossy(&self.log_path(&log)).matches(REGISTERED).count();
            if now > before {
                return Some(());
            }
            assert!(
                self.worker_running(i),
                "worker {id} exited: {}",
                self.worker_log(i)
            );
            None
        });
    }

    pub fn worker_pid(&self, i: usize) -> i32 {
        self.workers[i].as_ref().map(|c| c.id() as i32).unwrap()
    }

    /// Whether worker `i` is still running (not even a zombie).
    pub fn worker_running(&self, i: usize) -> bool {
        self.workers[i].as_ref().is_some_and(|c| {
            std::fs::read_to_string(format!("/proc/{}/stat", c.id()))
                .ok()
                .and_then(|s| s.rsplit(')').next().map(|r| r.trim_start().to_owned()))
                .is_some_and(|r| !r.starts_with('Z'))
        })
    }

    /// Sends `signal` to worker `i` and waits for it to exit.
    pub fn stop_worker(&mut self, i: usize, signal: Signal) -> ExitStatus {
        let mut child = self.workers[i].take().unwrap();
        kill(Pid::from_raw(child.id() as i32), signal).unwrap();
        child.wait().unwrap()
    }

    pub fn worker_log(&self, i: usize) -> String {
        let id = &self.setup.workers[i];
        read_lossy(&self.log_path(&format!("worker-{id}.log")))
    }

    /// Everything the daemons printed.
    pub fn daemon_logs(&self) -> String {
        let mut text = read_lossy(&self.log_path("app.log"));
        for i in 0..self.workers.len() {
            text.push_str(&self.worker_log(i));
        }
        text
    }

    /// A new API token of `user`; its secret is remembered as a secret.
    pub fn new_token(&self, user: &str, password: &str) -> String {
        let r = self.call_as(
            Auth::Basic(user, password),
            "POST",
            "/api/v1/tokens",
            Some(&json!({"name": "faults"})),
        );
        assert_eq!(r.status, 201, "{}", r.body);
        let secret = r.json()["secret"].as_str().unwrap().to_owned();
        self.add_secret(&secret);
        secret
    }

    pub fn add_secret(&self, secret: &str) {
        self.secrets.lock().unwrap().push(secret.to_owned());
    }

    /// A request with the admin's token.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Resp {
        self.call_as(Auth::Bearer(&self.token), method, path, body)
    }

    pub fn call_as(&self, auth: Auth<'_>, method: &str, path: &str, body: Option<&Value>) -> Resp {
        self.send(auth, method, path, &[], body)
    }

    /// A request with extra headers; every answer is kept for the secrets
    /// check, except a new token's (the one place its secret is shown).
    pub fn send(
        &self,
        auth: Auth<'_>,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Resp {
        use base64::Engine as _;
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("Content-Type", "application/json");
        match auth {
            Auth::None => {}
            Auth::Bearer(token) => req = req.header("Authorization", format!("Bearer {token}")),
            Auth::Basic(user, password) => {
                let pair =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                req = req.header("Authorization", format!("Basic {pair}"));
            }
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let req = req
            .body(body.map(Value::to_string).unwrap_or_default().into_bytes())
            .unwrap();
        let started = Instant::now();
        let resp = match self.agent.run(req) {
            Ok(mut res) => {
                let retry_after = res
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let set_cookie: Vec<String> = res
                    .headers()
                    .get_all("set-cookie")
                    .iter()
                    .filter_map(|v| v.to_str().ok().map(str::to_owned))
                    .collect();
                let status = res.status().as_u16();
                let bytes = res
                    .body_mut()
                    .with_config()
                    .limit(64 << 20)
                    .read_to_vec()
                    .unwrap_or_default();
                let mut body = String::from_utf8_lossy(&bytes).into_owned();
                if !set_cookie.is_empty() {
                    // Cookies are part of the answer too (the secrets check
                    // reads them), kept after the body.
                    body = format!("{body}\n{}", set_cookie.join("\n"));
                }
                Resp {
                    status,
                    retry_after,
                    body,
                    took: started.elapsed(),
                }
            }
            Err(_) => Resp {
                status: 0,
                retry_after: None,
                body: String::new(),
                took: started.elapsed(),
            },
        };
        let shows_a_secret = method == "POST" && path == "/api/v1/tokens" && resp.status == 201;
        if !shows_a_secret {
            let mut answers = self.answers.lock().unwrap();
            let _ = writeln!(answers, "{method} {path} {}\n{}", resp.status, resp.body);
        }
        resp
    }

    /// Submits `scenarios` on `branch` (with `extra` fields); panics unless 201.
    pub fn submit(&self, branch: &str, scenarios: &[&str], extra: Value) -> String {
        let mut body = json!({"branch": branch, "scenarios": scenarios});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        let r = self.call("POST", "/api/v1/queues", Some(&body));
        assert_eq!(r.status, 201, "{}", r.body);
        r.json()["id"].as_str().unwrap().to_owned()
    }

    pub fn queue(&self, id: &str) -> Value {
        let r = self.call("GET", &format!("/api/v1/queues/{id}"), None);
        assert_eq!(r.status, 200, "GET queue {id}: {}", r.body);
        r.json()
    }

    /// Waits until the queue is final and returns it.
    pub fn wait_final(&self, id: &str, timeout: Duration) -> Value {
        wait_for(timeout, &format!("queue {id} to end"), || {
            let q = self.queue(id);
            let s = q["status"].as_str().unwrap_or("");
            (!matches!(s, "waiting" | "running")).then_some(q)
        })
    }

    pub fn queue_log(&self, id: &str) -> String {
        read_lossy(&self.home.join("queues").join(id).join("queue.log"))
    }

    /// Processes started for this farm's queues that are still alive.
    pub fn leftovers(&self) -> Vec<String> {
        let mark = self.dir.path().to_string_lossy().into_owned();
        let home = self.home.to_string_lossy().into_owned();
        processes()
            .filter(|p| {
                (p.cmdline.contains(&mark)
                    || p.cmdline.contains(&home)
                    || p.environ.contains(&mark)
                    || p.environ.contains(&home))
                    && !p.cmdline.contains("testarena-app")
                    && !p.cmdline.contains("testarena-worker")
            })
            .map(|p| format!("{}: {}", p.pid, p.cmdline))
            .collect()
    }

    /// Waits (briefly) for every child of this farm's queues to be gone.
    pub fn assert_no_leftovers(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = self.leftovers();
            if left.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "processes left behind: {left:#?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `PRAGMA integrity_check` through the sqlite3 tool, read-only.
    pub fn db_integrity(&self) -> String {
        let out = Command::new("sqlite3")
            .arg("-readonly")
            .arg(self.db_path())
            .arg("PRAGMA integrity_check;")
            .output()
            .unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        )
    }

    /// Looks for every secret the farm knows (the passwords, every token
    /// made, the cookie key) in everything the farm wrote or was answered;
    /// see [`probe::check_secrets`].
    pub fn check_secrets(&self) {
        let secrets = self.secrets.lock().unwrap().clone();
        probe::check_secrets(&self.home, &self.dir.path().join("logs"), &secrets);
    }
}

impl Drop for Farm {
    fn drop(&mut self) {
        let children: Vec<Child> = self
            .workers
            .iter_mut()
            .filter_map(Option::take)
            .chain(self.app.take())
            .collect();
        for mut child in children {
            let pgid = Pid::from_raw(child.id() as i32);
            let _ = killpg(pgid, Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = killpg(pgid, Signal::SIGKILL);
            let _ = child.wait();
        }
        // What the queues left behind (a test that failed half-way).
        let mark = self.dir.path().to_string_lossy().into_owned();
        for p in processes() {
            if (p.cmdline.contains(&mark) || p.environ.contains(&mark))
                && p.pid != std::process::id() as i32
            {
                let _ = kill(Pid::from_raw(p.pid), Signal::SIGKILL);
            }
        }
    }
}
