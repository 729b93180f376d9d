//! The benchmarks' farm: the test kit's farm (`testarena-testkit`: the
//! real `testarena-app` and `testarena-worker`, a home, configs, an admin,
//! an HTTP client) set up for the benchmarks (a `bench` target whose build
//! and boot are `true`/`false`, the benchmark's repositories, an empty
//! static dir), with its errors as `anyhow`; and the process figures (RSS,
//! CPU) the scenarios measure.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use testarena_testkit::{Auth, RepoKind, Setup};
pub use testarena_testkit::{Bins, Client};

pub const ADMIN: &str = "bench";
pub const PASSWORD: &str = "bench password 1";

/// The binaries in `dir`, else those of this program's build
/// (`target/release` when run by `scripts/bench.sh`, `target/debug`
/// under `cargo run`).
pub fn find_bins(dir: Option<&Path>) -> anyhow::Result<Bins> {
    Ok(match dir {
        Some(d) => Bins::in_dir(d)?,
        None => Bins::of_this_build()?,
    })
}

/// What a farm's config says.
#[derive(Debug, Clone)]
pub struct Options {
    pub slots: u32,
    pub poll_interval_ms: u64,
    /// `(name, url)` of each repository; the first is the default.
    pub repos: Vec<(String, PathBuf)>,
    /// The configs' `database` (a PostgreSQL URL); `None`: SQLite in the home.
    pub database: Option<String>,
}

/// One app, at most one worker, their home and config.
#[derive(Debug)]
pub struct Farm {
    pub home: PathBuf,
    pub base: String,
    /// The admin, by Basic auth.
    pub admin: Client,
    kit: testarena_testkit::Farm,
}

impl Farm {
    /// Writes the config under `dir`, migrates, adds the admin user. Starts nothing.
    pub fn prepare(bins: &Bins, dir: &Path, options: &Options) -> anyhow::Result<Self> {
        let static_dir = dir.join("static");
        std::fs::create_dir_all(&static_dir)?;
        let kit = testarena_testkit::Farm::try_start(Setup {
            repo: RepoKind::Given(options.repos.clone()),
            targets: testarena_testkit::profile::noop("bench"),
            default_target: "bench".into(),
            workers: vec!["bench-worker".into()],
            start_app: false,
            start_workers: false,
            slots: options.slots,
            poll_interval_ms: options.poll_interval_ms,
            test_timeout_s: 300,
            heartbeat_s: 5,
            lost_after_s: 60,
            abort_grace_s: 2,
            dir: Some(dir.to_owned()),
            static_dir: Some(static_dir),
            bins: Some(bins.clone()),
            admin: (ADMIN.into(), PASSWORD.into()),
            database: options.database.clone(),
            ..Setup::small()
        })?;
        Ok(Self {
            home: kit.home.clone(),
            base: kit.base.clone(),
            admin: Client::new(&kit.base, Auth::Basic(ADMIN, PASSWORD)),
            kit,
        })
    }

    pub fn database(&self) -> PathBuf {
        self.kit.db_path()
    }

    /// The test kit's farm: its configs, logs and binaries.
    pub fn kit(&self) -> &testarena_testkit::Farm {
        &self.kit
    }

    pub fn start_app(&mut self) -> anyhow::Result<()> {
        Ok(self.kit.try_start_app()?)
    }

    pub fn start_worker(&mut self) -> anyhow::Result<()> {
        Ok(self.kit.try_start_worker(0)?)
    }

    pub fn app_pid(&self) -> Option<u32> {
        self.kit.app_pid_if_running()
    }

    pub fn worker_pid(&self) -> Option<u32> {
        self.kit.worker_pid_if_running(0)
    }

    /// A Bearer token of the admin, made through the API.
    pub fn token(&self) -> anyhow::Result<String> {
        Ok(self.kit.try_new_token(ADMIN, PASSWORD)?)
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
        Ok(self.admin.get_json(&format!("/api/v1/queues/{id}"))?)
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
        self.kit.stop();
    }
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

/// Polls `f` until it returns `true`; fails after `timeout` (the test
/// kit's wait, with errors counted as "not yet").
pub fn wait_for(
    timeout: Duration,
    what: &str,
    mut f: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    Ok(testarena_testkit::try_wait_for(timeout, what, || {
        f().map(|done| done.then_some(()))
            .map_err(|e| format!("{e:#}"))
    })?)
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
