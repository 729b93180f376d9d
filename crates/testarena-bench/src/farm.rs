//! A TestArena on loopback for the benchmarks: the real `testarena-app` and
//! `testarena-worker` binaries on a temp home with a generated config, an
//! admin user, and an HTTP client for the API.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::{Value, json};

pub const ADMIN: &str = "bench";
pub const PASSWORD: &str = "bench password 1";

/// Where the binaries under test are.
#[derive(Debug, Clone)]
pub struct Bins {
    pub app: PathBuf,
    pub worker: PathBuf,
}

impl Bins {
    /// `dir`, else the directory of this executable (`target/release` when
    /// run by `scripts/bench.sh`, `target/debug` under `cargo run`).
    pub fn find(dir: Option<&Path>) -> anyhow::Result<Self> {
        let dir = match dir {
            Some(d) => d.to_owned(),
            None => std::env::current_exe()?
                .parent()
                .context("the bench executable has no directory")?
                .to_owned(),
        };
        let bins = Self {
            app: dir.join("testarena-app"),
            worker: dir.join("testarena-worker"),
        };
        for b in [&bins.app, &bins.worker] {
            if !b.exists() {
                bail!(
                    "{} is missing: build the binaries first (cargo build --workspace --bins)",
                    b.display()
                );
            }
        }
        Ok(bins)
    }
}

/// What a farm's config says.
#[derive(Debug, Clone)]
pub struct Options {
    pub slots: u32,
    pub poll_interval_ms: u64,
    /// `(name, url)` of each repository; the first is the default.
    pub repos: Vec<(String, PathBuf)>,
}

/// One app, at most one worker, their home and config.
#[derive(Debug)]
pub struct Farm {
    pub dir: PathBuf,
    pub home: PathBuf,
    pub config: PathBuf,
    pub base: String,
    pub admin: Client,
    bins: Bins,
    app: Option<Child>,
    worker: Option<Child>,
}

impl Farm {
    /// Writes the config under `dir`, migrates, adds the admin user. Starts nothing.
    pub fn prepare(bins: &Bins, dir: &Path, options: &Options) -> anyhow::Result<Self> {
        let home = dir.join("home");
        let static_dir = dir.join("static");
        std::fs::create_dir_all(&static_dir)?;
        let port = free_port()?;
        let mut text = format!(
            r#"home = "{home}"
default_target = "bench"

[server]
listen = "127.0.0.1:{port}"
static_dir = "{static_dir}"

[worker]
id = "bench-worker"
slots = {slots}
poll_interval_ms = {poll}
test_timeout_s = 300
heartbeat_s = 5
lost_after_s = 60
abort_grace_s = 2

[targets.bench]
build = ["true"]
qemu = ["false"]
"#,
            home = home.display(),
            static_dir = static_dir.display(),
            slots = options.slots,
            poll = options.poll_interval_ms,
        );
        for (name, url) in &options.repos {
            text.push_str(&format!(
                "\n[[repos]]\nname = \"{name}\"\nurl = \"{}\"\n",
                url.display()
            ));
        }
        let config = dir.join("config.toml");
        std::fs::write(&config, text)?;
        let base = format!("http://127.0.0.1:{port}");
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{ADMIN}:{PASSWORD}"));
        let farm = Self {
            dir: dir.to_owned(),
            home,
            config,
            admin: Client::new(&base, &format!("Basic {basic}")),
            base,
            bins: bins.clone(),
            app: None,
            worker: None,
        };
        farm.app_command(&["migrate"], None)?;
        farm.app_command(
            &["user", "add", ADMIN, "--admin", "--password-stdin"],
            Some(&format!("{PASSWORD}\n")),
        )?;
        Ok(farm)
    }

    pub fn database(&self) -> PathBuf {
        self.home.join("testarena.db")
    }

    fn app_command(&self, args: &[&str], stdin: Option<&str>) -> anyhow::Result<()> {
        let mut child = Command::new(&self.bins.app)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", self.bins.app.display()))?;
        if let (Some(text), Some(mut input)) = (stdin, child.stdin.take()) {
            input.write_all(text.as_bytes())?;
        }
        let status = child.wait()?;
        if !status.success() {
            bail!("testarena-app {args:?} failed: {status}");
        }
        Ok(())
    }

    fn daemon(&self, bin: &Path, log: &str) -> anyhow::Result<Child> {
        let log = std::fs::File::create(self.dir.join(log))?;
        let mut cmd = Command::new(bin);
        cmd.arg("--config")
            .arg(&self.config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // Its own process group, so that stopping it stops what it started.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        cmd.spawn()
            .with_context(|| format!("starting {}", bin.display()))
    }

    pub fn start_app(&mut self) -> anyhow::Result<()> {
        let child = self.daemon(&self.bins.app.clone(), "app.log")?;
        self.app = Some(child);
        let health = Client::anonymous(&self.base);
        wait_for(Duration::from_secs(30), "the app to answer", || {
            Ok(health.request("GET", "/api/v1/health", None)?.0 == 200)
        })
    }

    pub fn start_worker(&mut self) -> anyhow::Result<()> {
        let child = self.daemon(&self.bins.worker.clone(), "worker.log")?;
        self.worker = Some(child);
        wait_for(Duration::from_secs(30), "the worker to register", || {
            let health = self.admin.get_json("/api/v1/health")?;
            Ok(health["workers"].as_array().is_some_and(|w| !w.is_empty()))
        })
    }

    pub fn app_pid(&self) -> Option<u32> {
        self.app.as_ref().map(Child::id)
    }

    pub fn worker_pid(&self) -> Option<u32> {
        self.worker.as_ref().map(Child::id)
    }

    /// A Bearer token of the admin, made through the API.
    pub fn token(&self) -> anyhow::Result<String> {
        let (status, body) = self
            .admin
            .post_json("/api/v1/tokens", &json!({"name": "bench"}))?;
        if status != 201 {
            bail!("creating a token: {status} {body}");
        }
        body["secret"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("no token in {body}"))
    }

    /// Submits a queue; returns its id and when the answer arrived.
    pub fn submit(
        &self,
        repo: &str,
        branch: &str,
        scenarios: &[&str],
    ) -> anyhow::Result<(String, chrono::DateTime<chrono::Utc>)> {
        submit(&self.admin, repo, branch, scenarios)
    }

    pub fn queue(&self, id: &str) -> anyhow::Result<Value> {
        self.admin.get_json(&format!("/api/v1/queues/{id}"))
    }

    /// Waits until the queue is final; returns it.
    pub fn wait_final(&self, id: &str, timeout: Duration) -> anyhow::Result<Value> {
        let mut last = Value::Null;
        wait_for(timeout, &format!("queue {id} to end"), || {
            last = self.queue(id)?;
            Ok(!matches!(
                last["status"].as_str(),
                Some("waiting" | "running")
            ))
        })?;
        Ok(last)
    }

    /// Stops the app and the worker (SIGTERM, then SIGKILL after 10 s).
    pub fn stop(&mut self) {
        for child in [self.worker.take(), self.app.take()].into_iter().flatten() {
            stop_child(child);
        }
    }
}

impl Drop for Farm {
    fn drop(&mut self) {
        self.stop();
    }
}

fn stop_child(mut child: Child) {
    let Ok(pid) = i32::try_from(child.id()) else {
        return;
    };
    let group = Pid::from_raw(pid);
    let _ = killpg(group, Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = killpg(group, Signal::SIGKILL);
    let _ = child.wait();
}

/// Submits a queue with `client`; returns its id and when the answer arrived.
pub fn submit(
    client: &Client,
    repo: &str,
    branch: &str,
    scenarios: &[&str],
) -> anyhow::Result<(String, chrono::DateTime<chrono::Utc>)> {
    let (status, body) = client.post_json(
        "/api/v1/queues",
        &json!({"repo": repo, "branch": branch, "scenarios": scenarios}),
    )?;
    let answered = chrono::Utc::now();
    if status != 201 {
        bail!("submitting {scenarios:?} on {repo}/{branch}: {status} {body}");
    }
    let id = body["id"]
        .as_str()
        .context("the new queue has no id")?
        .to_owned();
    Ok((id, answered))
}

/// A free loopback port: bound to port 0 (a random high port), then released.
fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Polls `f` every 5 ms until it returns `true`; fails after `timeout`.
pub fn wait_for(
    timeout: Duration,
    what: &str,
    mut f: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        // Errors count as "not yet" until the deadline (a daemon starting).
        let last = f();
        if matches!(last, Ok(true)) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let why = last.err().map(|e| format!(": {e:#}")).unwrap_or_default();
            bail!("timed out after {timeout:?} waiting for {what}{why}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// An HTTP/1.1 client of the API with keep-alive and fixed credentials.
#[derive(Debug, Clone)]
pub struct Client {
    agent: ureq::Agent,
    base: String,
    auth: Option<String>,
}

impl Client {
    pub fn new(base: &str, authorization: &str) -> Self {
        Self {
            agent: agent(),
            base: base.to_owned(),
            auth: Some(authorization.to_owned()),
        }
    }

    pub fn anonymous(base: &str) -> Self {
        Self {
            agent: agent(),
            base: base.to_owned(),
            auth: None,
        }
    }

    /// The same credentials over a connection of its own.
    pub fn fresh(&self) -> Self {
        Self {
            agent: agent(),
            ..self.clone()
        }
    }

    /// `http://host:port`.
    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn authorization(&self) -> Option<&str> {
        self.auth.as_deref()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// One request; returns the status and the body.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Vec<u8>)> {
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(self.url(path));
        if let Some(auth) = &self.auth {
            req = req.header("Authorization", auth);
        }
        if body.is_some() {
            req = req.header("Content-Type", "application/json");
        }
        let req = req.body(body.map(Value::to_string).unwrap_or_default().into_bytes())?;
        let mut res = self
            .agent
            .run(req)
            .with_context(|| format!("{method} {path}"))?;
        let status = res.status().as_u16();
        let bytes = res
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_vec()
            .with_context(|| format!("{method} {path}: reading the body"))?;
        Ok((status, bytes))
    }

    /// A GET whose body is read as it arrives (Server-Sent Events).
    pub fn stream(&self, path: &str) -> anyhow::Result<impl std::io::Read + use<>> {
        let mut req = self.agent.get(self.url(path));
        if let Some(auth) = &self.auth {
            req = req.header("Authorization", auth);
        }
        let res = req.call().with_context(|| format!("GET {path}"))?;
        if res.status() != 200 {
            bail!("GET {path}: {}", res.status());
        }
        Ok(res.into_body().into_reader())
    }

    pub fn get_json(&self, path: &str) -> anyhow::Result<Value> {
        let (status, body) = self.request("GET", path, None)?;
        if status != 200 {
            bail!("GET {path}: {status} {}", String::from_utf8_lossy(&body));
        }
        Ok(serde_json::from_slice(&body)?)
    }

    pub fn post_json(&self, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
        let (status, bytes) = self.request("POST", path, Some(body))?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .max_idle_connections_per_host(64)
        .build()
        .into()
}

/// A process's resident memory in KiB (`VmRSS`).
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .context("no VmRSS")
}

pub fn rss_mib(pid: u32) -> anyhow::Result<f64> {
    Ok(rss_kib(pid)? as f64 / 1024.0)
}

/// CPU time (user + system) a process has used so far, in seconds.
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The fields after the command name, which may hold spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).context("bad stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields.get(i).context("short stat")?.parse::<f64>()?)
    };
    // utime and stime are fields 14 and 15 of stat; `rest` starts at field 3.
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)?.unwrap_or(100) as f64;
    Ok((ticks(11)? + ticks(12)?) / hz)
}

/// Samples a process's RSS every 20 ms in a thread until dropped; keeps the peak.
#[derive(Debug)]
pub struct RssPeak {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<u64>>,
}

impl RssPeak {
    pub fn start(pid: u32) -> Self {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peak = 0;
            while !flag.load(Ordering::Relaxed) {
                peak = peak.max(rss_kib(pid).unwrap_or(0));
                std::thread::sleep(Duration::from_millis(20));
            }
            peak.max(rss_kib(pid).unwrap_or(0))
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }

    /// The peak, in MiB.
    pub fn finish(mut self) -> f64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let kib = self.thread.take().and_then(|t| t.join().ok()).unwrap_or(0);
        kib as f64 / 1024.0
    }
}

impl Drop for RssPeak {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}
