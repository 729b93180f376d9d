//! A whole TestArena on loopback: the real `testarena-app` and
//! `testarena-worker` binaries on a temp home, the lx106 firmware fixture as
//! a real git repository, real `make` with the Xtensa cross-compiler and real
//! `qemu-system-xtensa`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde_json::{Value, json};

pub const ADMIN: &str = "admin";
pub const PASSWORD: &str = "e2e password 1";

/// The directory the binaries of this build are in (`target/debug`).
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/debug/deps/e2e-<hash> -> target/debug
    exe.parent().and_then(Path::parent).unwrap().to_owned()
}

pub fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace's binaries first (cargo build --workspace --bins)",
        path.display()
    );
    path
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Fails with a clear message when the firmware tools are missing.
pub fn require_tools() {
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

/// A free loopback port (bound, then released for the app to take).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

pub struct Farm {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub base: String,
    app: Option<Child>,
    worker: Option<Child>,
}

/// Knobs of a farm's config.
#[derive(Debug, Clone)]
pub struct Options {
    pub slots: u32,
    pub abort_grace_s: u64,
    pub heartbeat_s: u64,
    pub lost_after_s: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            slots: 2,
            abort_grace_s: 2,
            heartbeat_s: 1,
            lost_after_s: 3,
        }
    }
}

impl Farm {
    pub fn start() -> Self {
        Self::start_with(Options::default())
    }

    pub fn start_with(options: Options) -> Self {
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
id = "e2e-worker"
slots = {slots}
poll_interval_ms = 50
test_timeout_s = 60
abort_grace_s = {grace}
heartbeat_s = {heartbeat}
lost_after_s = {lost}

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
            slots = options.slots,
            grace = options.abort_grace_s,
            heartbeat = options.heartbeat_s,
            lost = options.lost_after_s,
        );
        std::fs::write(&config, text).unwrap();
        let mut farm = Farm {
            dir,
            config,
            base: format!("http://127.0.0.1:{port}"),
            app: None,
            worker: None,
        };
        farm.app_command(&["migrate"]);
        let mut add = Command::new(bin("testarena-app"))
            .args(["--config"])
            .arg(&farm.config)
            .args(["user", "add", ADMIN, "--admin", "--password-stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        add.stdin
            .take()
            .unwrap()
            .write_all(format!("{PASSWORD}\n").as_bytes())
            .unwrap();
        assert!(add.wait().unwrap().success(), "user add failed");
        farm.start_app();
        farm.start_worker();
        farm
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    fn app_command(&self, args: &[&str]) {
        let status = Command::new(bin("testarena-app"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "testarena-app {args:?} failed");
    }

    fn daemon(&self, name: &str, log: &str) -> Child {
        let log = std::fs::File::create(self.dir.path().join(log)).unwrap();
        let mut cmd = Command::new(bin(name));
        cmd.arg("--config")
            .arg(&self.config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        cmd.spawn().unwrap()
    }

    pub fn start_app(&mut self) {
        self.app = Some(self.daemon("testarena-app", "app.log"));
        wait_for(Duration::from_secs(30), "the app to answer", || {
            (self.get_raw("/api/v1/health").0 == 200).then_some(())
        });
    }

    pub fn start_worker(&mut self) {
        self.worker = Some(self.daemon("testarena-worker", "worker.log"));
        wait_for(Duration::from_secs(30), "the worker to register", || {
            let health = self.get("/api/v1/health");
            health["workers"]
                .as_array()
                .is_some_and(|w| !w.is_empty())
                .then_some(())
        });
    }

    /// Kills the worker with `signal` and waits for it; returns how long it took to exit.
    pub fn stop_worker(&mut self, signal: Signal) -> (Duration, std::process::ExitStatus) {
        let mut child = self.worker.take().unwrap();
        let started = Instant::now();
        kill(Pid::from_raw(child.id() as i32), signal).unwrap();
        let status = child.wait().unwrap();
        (started.elapsed(), status)
    }

    pub fn worker_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("worker.log")).unwrap_or_default()
    }

    fn request(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, String) {
        use base64::Engine as _;
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{ADMIN}:{PASSWORD}"));
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let req = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("Authorization", format!("Basic {auth}"))
            .header("Content-Type", "application/json")
            .body(body.map(Value::to_string).unwrap_or_default().into_bytes())
            .unwrap();
        match agent.run(req) {
            Ok(mut res) => {
                let status = res.status().as_u16();
                let bytes = res
                    .body_mut()
                    .with_config()
                    .limit(64 << 20)
                    .read_to_vec()
                    .unwrap_or_default();
                (status, String::from_utf8_lossy(&bytes).into_owned())
            }
            Err(_) => (0, String::new()),
        }
    }

    /// The queue's Server-Sent Events, as a byte stream.
    pub fn events(&self, id: &str) -> impl std::io::Read {
        use base64::Engine as _;
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{ADMIN}:{PASSWORD}"));
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        let res = agent
            .get(format!("{}/api/v1/queues/{id}/events", self.base))
            .header("Authorization", format!("Basic {auth}"))
            .call()
            .unwrap();
        res.into_body().into_reader()
    }

    pub fn get_raw(&self, path: &str) -> (u16, String) {
        self.request("GET", path, None)
    }

    pub fn get(&self, path: &str) -> Value {
        let (status, body) = self.request("GET", path, None);
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let (status, text) = self.request("POST", path, Some(body));
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub fn delete(&self, path: &str) -> u16 {
        self.request("DELETE", path, None).0
    }

    /// Submits `scenarios` on `branch`; returns the queue id.
    pub fn submit(&self, branch: &str, scenarios: &[&str]) -> String {
        let (status, q) = self.post(
            "/api/v1/queues",
            &json!({"branch": branch, "scenarios": scenarios}),
        );
        assert_eq!(status, 201, "{q}");
        q["id"].as_str().unwrap().to_owned()
    }

    pub fn queue(&self, id: &str) -> Value {
        self.get(&format!("/api/v1/queues/{id}"))
    }

    /// Waits until the queue is final and returns it.
    pub fn wait_final(&self, id: &str, timeout: Duration) -> Value {
        wait_for(timeout, &format!("queue {id} to end"), || {
            let q = self.queue(id);
            let s = q["status"].as_str().unwrap_or("");
            (!matches!(s, "waiting" | "running")).then_some(q)
        })
    }

    pub fn wait_status(&self, id: &str, status: &str, timeout: Duration) -> Value {
        wait_for(timeout, &format!("queue {id} to be {status}"), || {
            let q = self.queue(id);
            (q["status"] == status).then_some(q)
        })
    }

    /// The log of one test, read through the API.
    pub fn test_log(&self, id: &str, task: &str, test: &str) -> String {
        let (status, body) =
            self.get_raw(&format!("/api/v1/queues/{id}/logs/tasks/{task}/{test}.log"));
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Processes started for this farm's queues that are still alive.
    pub fn leftovers(&self) -> Vec<String> {
        let home = self.home();
        let home = home.to_string_lossy();
        let mut out = Vec::new();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return out;
        };
        for entry in entries.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            // Children carry the farm's paths in their argv (make -C, qemu
            // -kernel) or their environment (TESTARENA_WORKSPACE).
            let ours = (cmdline.contains(home.as_ref())
                || String::from_utf8_lossy(&environ).contains(home.as_ref()))
                && !cmdline.contains("testarena-app")
                && !cmdline.contains("testarena-worker");
            let zombie = std::fs::read_to_string(entry.path().join("stat")).is_ok_and(|s| {
                s.rsplit(')')
                    .next()
                    .is_some_and(|r| r.trim_start().starts_with('Z'))
            });
            if ours && !zombie {
                out.push(format!("{pid}: {cmdline}"));
            }
        }
        out
    }

    /// Waits (briefly) for every child of this farm's queues to be gone.
    pub fn assert_no_leftovers(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
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
}

impl Drop for Farm {
    fn drop(&mut self) {
        for child in [self.worker.take(), self.app.take()].into_iter().flatten() {
            let mut child = child;
            let pgid = Pid::from_raw(child.id() as i32);
            let _ = killpg(pgid, Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = killpg(pgid, Signal::SIGKILL);
            let _ = child.wait();
        }
    }
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
