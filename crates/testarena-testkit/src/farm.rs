//! A whole TestArena on loopback made of real processes.
//!
//! A [`Farm`] is a directory (a temporary one unless the setup names one)
//! holding a git repository, a `home` (or the setup's, e.g. a tmpfs), one
//! config per daemon (`app.toml`, `worker-<id>.toml`) and the captured
//! output of every daemon it starts (`logs/`, appended across restarts).
//! It creates an admin with `testarena-app user add` and speaks to the app
//! over HTTP with the admin's API token. With [`Setup::keep_answers`] every
//! answer it got is kept in `logs/answers.log` (for the secrets checks).
//! Dropping it stops every daemon by process group and kills, by pid,
//! anything its queues left behind.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::bins::Bins;
use crate::config::{self, Place};
use crate::daemon::{self, Daemon};
use crate::error::{Error, IoContext as _, Result, or_panic};
use crate::http::{Auth, Client};
use crate::netns;
use crate::procs::{self, read_lossy};
use crate::repo::Repo;
use crate::wait::try_wait_for;

mod api;

/// What a worker logs once it is registered.
const REGISTERED: &str = "worker registered";
/// How long a daemon may take to be ready.
const READY: Duration = Duration::from_secs(30);

/// Which repositories the farm's config names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepoKind {
    /// `tests/fixtures/make-repo.sh` as `firmware`: the lx106 firmware, one
    /// branch per behaviour; target `lx106` (real make and QEMU).
    Fixture,
    /// A few `<run>` scenarios as `firmware` (see [`Repo::small`]); target
    /// `noop`, whose build and boot are shell commands.
    Small,
    /// These `(name, url)`, the first the default; no target is added.
    Given(Vec<(String, PathBuf)>),
}

/// What a farm is made of and how its daemons are configured.
#[derive(Debug, Clone)]
pub struct Setup {
    pub repo: RepoKind,
    /// `[targets.*]` tables (TOML) added to the repository kind's.
    pub targets: String,
    pub default_target: String,
    /// One worker process per id.
    pub workers: Vec<String>,
    pub start_app: bool,
    /// Start the workers with the farm (else [`Farm::start_worker`]).
    pub start_workers: bool,
    pub slots: u32,
    pub poll_interval_ms: u64,
    pub test_timeout_s: u64,
    pub abort_grace_s: u64,
    pub heartbeat_s: u64,
    pub lost_after_s: u64,
    /// `worker.retry_errors`: 0 here (a farm failure ends the queue, as
    /// the suites written before attempts expect), 1 in the product.
    pub retry_errors: u32,
    /// `worker.build_cache_mib`: 0 here (every queue builds), 2048 in the
    /// product.
    pub build_cache_mib: u64,
    pub rust_log: String,
    /// More environment for every daemon and sub-command (the secrets that
    /// `*_env` config keys name).
    pub env: Vec<(String, String)>,
    /// An existing directory to use as `home` (a tmpfs), else `<dir>/home`.
    pub home: Option<PathBuf>,
    /// Each worker gets its own home, `<dir>/home-<id>` (a "host" sharing
    /// no directory with the app or the other workers; PostgreSQL only).
    pub worker_homes: bool,
    /// The `database` of worker i's config (e.g. the PostgreSQL URL over
    /// its network namespace's veth); missing entries: the farm's.
    pub worker_database: Vec<String>,
    /// The network namespace (a `/run/netns/<name>` file) worker i runs
    /// in, on a "host" of its own: it also gets a PID namespace of its own
    /// (see [`netns::own_host`]), so that no other worker sees or kills its
    /// processes, as on separate machines. Missing entries: this one.
    pub worker_netns: Vec<PathBuf>,
    /// The `database` of every config: `None` is this run's backend
    /// ([`crate::backend`]: `<home>/testarena.db`, or a fresh PostgreSQL
    /// database with `TESTARENA_TEST_BACKEND=postgres`).
    pub database: Option<String>,
    /// An existing directory to hold the farm (kept), else a temporary one.
    pub dir: Option<PathBuf>,
    /// `server.static_dir`; `None` leaves it out of the config.
    pub static_dir: Option<PathBuf>,
    /// The daemons to run; by default those of this build's profile.
    pub bins: Option<Bins>,
    /// The admin the farm creates: name and password.
    pub admin: (String, String),
    /// Keep every answer in `logs/answers.log`.
    pub keep_answers: bool,
}

/// The admin's password: long and unlikely, so that finding it anywhere
/// is a leak and not a coincidence.
pub const PASSWORD: &str = "testkit-admin-pw-7Qx9Lm2Vz";

impl Setup {
    /// The small repository and the `noop` target: queues of `<run>`
    /// tests that take milliseconds. Two slots, one worker `w1`.
    pub fn small() -> Self {
        Self {
            repo: RepoKind::Small,
            targets: String::new(),
            default_target: "noop".into(),
            workers: vec!["w1".into()],
            start_app: true,
            start_workers: true,
            slots: 2,
            poll_interval_ms: 20,
            test_timeout_s: 120,
            abort_grace_s: 2,
            heartbeat_s: 1,
            lost_after_s: 30,
            retry_errors: 0,
            build_cache_mib: 0,
            rust_log: "info".into(),
            env: Vec::new(),
            home: None,
            worker_homes: false,
            worker_database: Vec::new(),
            worker_netns: Vec::new(),
            database: None,
            dir: None,
            static_dir: Some(crate::workspace_root().join("static")),
            bins: None,
            admin: ("admin".into(), PASSWORD.into()),
            keep_answers: false,
        }
    }

    /// The example firmware with the lx106 profile
    /// (`tests/fixtures/lx106.toml`): real make and QEMU. One slot.
    pub fn lx106() -> Self {
        Self {
            repo: RepoKind::Fixture,
            default_target: "lx106".into(),
            slots: 1,
            ..Self::small()
        }
    }
}

/// A running farm. See the module documentation.
#[derive(Debug)]
pub struct Farm {
    pub dir: PathBuf,
    pub home: PathBuf,
    /// The default repository (the fixture, the small one, or the first
    /// one given).
    pub repo: Repo,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    pub setup: Setup,
    pub bins: Bins,
    /// The admin's API token (once the app has started).
    pub token: String,
    client: Client,
    app: Option<Daemon>,
    workers: Vec<Option<Daemon>>,
    secrets: Mutex<Vec<String>>,
    answers: Option<Mutex<File>>,
    /// Removed last, after the daemons are gone.
    /// The configs' `database`.
    database: String,
    /// The PostgreSQL database this farm made, dropped after its daemons.
    _test_db: Option<crate::backend::TestDatabase>,
    _temp: Option<tempfile::TempDir>,
}

/// Fails with a clear message when a tool is missing.
fn require_tools(tools: &[&str]) -> Result<()> {
    for tool in tools {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            return Err(Error::Other(format!(
                "{tool} is not installed: run scripts/test.sh, which installs it"
            )));
        }
    }
    Ok(())
}

impl Farm {
    /// Makes the farm and starts what the setup asks; panics on failure.
    pub fn start(setup: Setup) -> Farm {
        or_panic(Self::try_start(setup))
    }

    /// Makes the farm (directory, repository, configs, database, admin)
    /// and starts the app and the workers as the setup asks.
    pub fn try_start(setup: Setup) -> Result<Farm> {
        require_tools(&["git"])?;
        if setup.repo == RepoKind::Fixture {
            require_tools(&["qemu-system-xtensa", "xtensa-lx106-elf-gcc", "make"])?;
        }
        let bins = match &setup.bins {
            Some(b) => b.clone(),
            None => Bins::of_this_build()?,
        };
        let (temp, dir) = match &setup.dir {
            Some(d) => (None, d.clone()),
            None => {
                let t = tempfile::Builder::new()
                    .prefix("testarena-farm-")
                    .tempdir()
                    .what(|| "making a temporary directory".into())?;
                let path = t.path().to_owned();
                (Some(t), path)
            }
        };
        let home = setup.home.clone().unwrap_or_else(|| dir.join("home"));
        let logs = dir.join("logs");
        std::fs::create_dir_all(&logs).what(|| format!("creating {}", logs.display()))?;
        let repo = match &setup.repo {
            RepoKind::Fixture => Repo::fixture(&dir.join("repo"))?,
            RepoKind::Small => Repo::small(&dir.join("repo"))?,
            RepoKind::Given(repos) => Repo::at(
                &repos
                    .first()
                    .ok_or_else(|| Error::Other("RepoKind::Given names no repository".into()))?
                    .1,
            ),
        };
        let answers = if setup.keep_answers {
            let path = logs.join("answers.log");
            Some(Mutex::new(
                File::create(&path).what(|| format!("creating {}", path.display()))?,
            ))
        } else {
            None
        };
        let (database, test_db) = match &setup.database {
            Some(url) => (url.clone(), None),
            None => {
                let db =
                    crate::backend::TestDatabase::try_for_this_run(&home.join("testarena.db"))?;
                (db.url().to_owned(), Some(db))
            }
        };
        let port = crate::port::free_port()?;
        let base = format!("http://127.0.0.1:{port}");
        let mut farm = Farm {
            client: Client::new(&base, Auth::None),
            base,
            repo,
            home,
            bins,
            app: None,
            workers: setup.workers.iter().map(|_| None).collect(),
            secrets: Mutex::new(vec![setup.admin.1.clone()]),
            answers,
            token: String::new(),
            setup,
            dir,
            database,
            _test_db: test_db,
            _temp: temp,
        };
        farm.write_configs(port)?;
        farm.try_app_command(&["migrate"], None)?;
        let (name, password) = farm.setup.admin.clone();
        farm.try_add_user(&name, &password, true)?;
        if farm.setup.start_app {
            farm.try_start_app()?;
        }
        if farm.setup.start_workers {
            for i in 0..farm.workers.len() {
                farm.try_start_worker(i)?;
            }
        }
        Ok(farm)
    }

    fn write_configs(&self, port: u16) -> Result<()> {
        let s = &self.setup;
        let mut targets = match &s.repo {
            RepoKind::Fixture => crate::profile::LX106.to_owned(),
            RepoKind::Small => crate::profile::noop("noop"),
            RepoKind::Given(_) => String::new(),
        };
        targets.push_str(&s.targets);
        let repos = match &s.repo {
            RepoKind::Given(repos) => repos.clone(),
            _ => vec![("firmware".to_owned(), self.repo.path.clone())],
        };
        let place = Place {
            home: &self.home,
            database: &self.database,
            port,
            repos: &repos,
            targets: &targets,
        };
        let app_id = s.workers.first().map_or("app", String::as_str);
        let mut files = vec![("app.toml".to_owned(), config::render(s, &place, app_id))];
        for (i, id) in s.workers.iter().enumerate() {
            let home = self.worker_home(i);
            std::fs::create_dir_all(&home).what(|| format!("creating {}", home.display()))?;
            let worker = Place {
                home: &home,
                database: s.worker_database.get(i).map_or(&self.database, |d| d),
                ..place
            };
            files.push((format!("worker-{id}.toml"), config::render(s, &worker, id)));
        }
        for (name, text) in files {
            let path = self.dir.join(name);
            std::fs::write(&path, text).what(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    }

    /// Worker i's home: the farm's, or its own with [`Setup::worker_homes`].
    pub fn worker_home(&self, i: usize) -> PathBuf {
        if self.setup.worker_homes {
            self.dir.join(format!("home-{}", self.setup.workers[i]))
        } else {
            self.home.clone()
        }
    }

    /// The config of the app (`None`) or of worker `Some(i)`.
    pub fn config_path(&self, worker: Option<usize>) -> PathBuf {
        match worker {
            None => self.dir.join("app.toml"),
            Some(i) => self
                .dir
                .join(format!("worker-{}.toml", self.setup.workers[i])),
        }
    }

    /// Where the output of `name` (`app.log`, `worker-<id>.log`) goes.
    pub fn log_path(&self, name: &str) -> PathBuf {
        self.dir.join("logs").join(name)
    }

    /// The SQLite file (on a SQLite farm).
    pub fn db_path(&self) -> PathBuf {
        self.home.join("testarena.db")
    }

    /// The configs' `database`: the SQLite path or the PostgreSQL URL.
    pub fn database_url(&self) -> &str {
        &self.database
    }

    /// True when the farm runs on PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        self.database.starts_with("postgres")
    }

    /// Runs `testarena-app <args>` to its end, `stdin` (a line) on its input.
    pub fn try_app_command(&self, args: &[&str], stdin: Option<&str>) -> Result<()> {
        let mut cmd = daemon::command(
            &self.bins.app,
            &self.config_path(None),
            args,
            &self.setup.rust_log,
        );
        cmd.envs(self.setup.env.iter().map(|(k, v)| (k, v)));
        let input = stdin.map(|s| format!("{s}\n")).unwrap_or_default();
        daemon::run_to_end(cmd, &input, &self.log_path("app.log"))
    }

    pub fn app_command(&self, args: &[&str], stdin: Option<&str>) {
        or_panic(self.try_app_command(args, stdin));
    }

    /// A user made with `testarena-app user add`; the password is
    /// remembered as a secret.
    pub fn try_add_user(&self, name: &str, password: &str, admin: bool) -> Result<()> {
        self.add_secret(password);
        let mut args = vec!["user", "add", name];
        if admin {
            args.push("--admin");
        }
        args.push("--password-stdin");
        self.try_app_command(&args, Some(password))
    }

    pub fn add_user(&self, name: &str, password: &str, admin: bool) {
        or_panic(self.try_add_user(name, password, admin));
    }

    fn command(&self, binary: &Path, config: &Path) -> Command {
        let mut cmd = daemon::command(binary, config, &[], &self.setup.rust_log);
        cmd.envs(self.setup.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    fn spawn(&self, binary: &Path, config: &Path, log: &str) -> Result<Daemon> {
        let cmd = self.command(binary, config);
        let name = binary
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        Daemon::spawn(&name, cmd, &self.log_path(log))
    }

    /// Starts the app and waits until `/api/v1/health` answers 200; makes
    /// the admin's token the first time.
    pub fn try_start_app(&mut self) -> Result<()> {
        if self.app.is_some() {
            return Err(Error::Other("the app runs already".into()));
        }
        let app = self.spawn(&self.bins.app, &self.config_path(None), "app.log")?;
        self.app = Some(app);
        let what = "the app to answer /api/v1/health";
        try_wait_for(READY, what, || {
            if !self.app.as_mut().is_some_and(Daemon::running) {
                return Err(Error::Other(format!(
                    "the app exited:\n{}",
                    tail(&read_lossy(&self.log_path("app.log")))
                )));
            }
            Ok((self.client.call("GET", "/api/v1/health", None).status == 200).then_some(()))
        })?;
        if self.token.is_empty() {
            let (name, password) = self.setup.admin.clone();
            self.token = self.try_new_token(&name, &password)?;
        }
        Ok(())
    }

    pub fn start_app(&mut self) {
        or_panic(self.try_start_app());
    }

    /// The app's pid; panics when it is not running.
    pub fn app_pid(&self) -> i32 {
        let pid = self.app.as_ref().map(Daemon::pid).expect_running("the app");
        i32::try_from(pid).unwrap_or(i32::MAX)
    }

    /// The app's pid, if it runs.
    pub fn app_pid_if_running(&self) -> Option<u32> {
        self.app.as_ref().map(Daemon::pid)
    }

    /// Sends `signal` to the app and waits for it to exit.
    pub fn stop_app(&mut self, signal: Signal) -> ExitStatus {
        let app = self.app.take().expect_running("the app");
        or_panic(app.signal_and_wait(signal))
    }

    /// Kills the app's whole group at once (open streams break, as in a
    /// crash).
    pub fn crash_app(&mut self) {
        if let Some(app) = self.app.take() {
            app.kill_group(Signal::SIGKILL);
        }
    }

    /// Starts worker `i` and waits until it logs that it is registered.
    pub fn try_start_worker(&mut self, i: usize) -> Result<()> {
        if self.workers[i].is_some() {
            return Err(Error::Other(format!("worker {i} runs already")));
        }
        let id = self.setup.workers[i].clone();
        let log = format!("worker-{id}.log");
        let before = read_lossy(&self.log_path(&log)).matches(REGISTERED).count();
        let mut cmd = self.command(&self.bins.worker, &self.config_path(Some(i)));
        if let Some(netns) = self.setup.worker_netns.get(i) {
            cmd = netns::own_host(&cmd, netns)?;
        }
        let worker = Daemon::spawn("testarena-worker", cmd, &self.log_path(&log))?;
        self.workers[i] = Some(worker);
        try_wait_for(READY, &format!("worker {id} to register"), || {
            let text = read_lossy(&self.log_path(&log));
            if text.matches(REGISTERED).count() > before {
                return Ok(Some(()));
            }
            if !self.workers[i].as_mut().is_some_and(Daemon::running) {
                return Err(Error::Other(format!(
                    "worker {id} exited:\n{}",
                    tail(&text)
                )));
            }
            Ok(None)
        })
    }

    pub fn start_worker(&mut self, i: usize) {
        or_panic(self.try_start_worker(i));
    }

    pub fn worker_pid(&self, i: usize) -> i32 {
        let pid = self.workers[i]
            .as_ref()
            .map(Daemon::pid)
            .expect_running("the worker");
        i32::try_from(pid).unwrap_or(i32::MAX)
    }

    pub fn worker_pid_if_running(&self, i: usize) -> Option<u32> {
        self.workers[i].as_ref().map(Daemon::pid)
    }

    /// Whether worker `i` is still running (not even a zombie).
    pub fn worker_running(&self, i: usize) -> bool {
        self.workers[i]
            .as_ref()
            .is_some_and(|w| procs::alive(w.pid()))
    }

    /// Sends `signal` to worker `i` (not its group) and waits for it to
    /// exit. Not for a worker on a host of its own
    /// ([`Setup::worker_netns`]): `unshare` in front of it ignores SIGTERM.
    pub fn stop_worker(&mut self, i: usize, signal: Signal) -> ExitStatus {
        let worker = self.workers[i].take().expect_running("the worker");
        or_panic(worker.signal_and_wait(signal))
    }

    /// Stops every daemon (SIGTERM to each group, SIGKILL after 10 s).
    pub fn stop(&mut self) {
        let mut daemons: Vec<Daemon> = self.workers.iter_mut().filter_map(Option::take).collect();
        daemons.extend(self.app.take());
        for mut d in daemons {
            d.stop(daemon::STOP_GRACE);
        }
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

    /// Processes started for this farm's queues that are still alive.
    pub fn leftovers(&self) -> Vec<String> {
        let mark = self.dir.to_string_lossy().into_owned();
        let home = self.home.to_string_lossy().into_owned();
        procs::processes()
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
        let left = try_wait_for(Duration::from_secs(10), "no process left behind", || {
            let left = self.leftovers();
            if left.is_empty() {
                Ok(Some(()))
            } else {
                Err(format!("{left:#?}"))
            }
        });
        if let Err(e) = left {
            panic!("processes left behind: {e}");
        }
    }

    /// `PRAGMA integrity_check` through the sqlite3 tool, read-only.
    pub fn db_integrity(&self) -> String {
        or_panic(require_tools(&["sqlite3"]));
        let out = Command::new("sqlite3")
            .arg("-readonly")
            .arg(self.db_path())
            .arg("PRAGMA integrity_check;")
            .output()
            .unwrap_or_else(|e| panic!("running sqlite3: {e}"));
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        )
    }
}

impl Drop for Farm {
    fn drop(&mut self) {
        self.stop();
        // What the queues left behind (a test that failed half-way): every
        // process whose argv or environment names this farm's directory.
        let mark = self.dir.to_string_lossy().into_owned();
        let home = self.home.to_string_lossy().into_owned();
        let me = i32::try_from(std::process::id()).unwrap_or(0);
        for p in procs::processes() {
            let ours = [&mark, &home]
                .iter()
                .any(|m| p.cmdline.contains(m.as_str()) || p.environ.contains(m.as_str()));
            if ours && p.pid != me {
                let _ = kill(Pid::from_raw(p.pid), Signal::SIGKILL);
            }
        }
    }
}

/// The last lines of a log, for an error message.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// `Option::expect` for a daemon that must be running, without the lint.
trait ExpectRunning<T> {
    fn expect_running(self, what: &str) -> T;
}

impl<T> ExpectRunning<T> for Option<T> {
    fn expect_running(self, what: &str) -> T {
        self.unwrap_or_else(|| panic!("{what} is not running"))
    }
}
