//! A farm for the worker's tests: a temp home, a migrated temp SQLite, a real
//! git repository made with `git`, a config, and helpers that submit queues
//! and wait for events with deadlines.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tempfile::TempDir;
use testarena_domain::config::{Config, RepoConfig, TargetConfig, WorkerConfig};
use testarena_domain::db::{self, DbPool};
use testarena_domain::models::{NewQueue, NewTask, QueueDetail, QueueRow};
use testarena_domain::paths::Home;
use testarena_domain::status::Status;
use testarena_domain::store;
use testarena_worker::db::Db;
use testarena_worker::nudge::Nudges;
use testarena_worker::runner::{self, Context};
use testarena_worker::workspace::SlotPool;
use tokio::sync::watch;

/// The grace period of every test farm, in seconds.
pub const GRACE_S: u64 = 1;

/// The scenarios of the test repository.
pub const SCENARIOS: &[(&str, &str)] = &[
    (
        "scenarios/pass.xml",
        r#"<scenario name="pass">
  <env name="GREETING" value="hi there"/>
  <test name="hello"><run>echo "hello from $TESTARENA_TASK_ID"</run></test>
  <test name="env"><run>test "$GREETING" = "hi there" &amp;&amp; test "$TESTARENA_BUILD_DIR" = "$TESTARENA_WORKSPACE/build" &amp;&amp; test -d "$TESTARENA_LOG_DIR" &amp;&amp; test -n "$TESTARENA_QUEUE_ID" &amp;&amp; test "$(pwd -P)" = "$(cd "$TESTARENA_WORKSPACE" &amp;&amp; pwd -P)" &amp;&amp; test -f README</run></test>
</scenario>
"#,
    ),
    (
        "scenarios/fail.xml",
        r#"<scenario name="fail">
  <test name="ok"><run>true</run></test>
  <test name="bad"><run>echo failing; exit 3</run></test>
</scenario>
"#,
    ),
    (
        "scenarios/sleep.xml",
        r#"<scenario name="sleep" timeout="600">
  <test name="sleep"><run>sleep 600 &amp; sleep 600 &amp; wait</run></test>
</scenario>
"#,
    ),
    (
        "scenarios/stubborn.xml",
        r#"<scenario name="stubborn" timeout="600">
  <test name="stubborn"><run>trap '' TERM; sleep 600 &amp; sleep 600; wait</run></test>
</scenario>
"#,
    ),
    (
        "scenarios/timeout.xml",
        r#"<scenario name="timeout">
  <test name="slow" timeout="1"><run>sleep 600</run></test>
  <test name="after"><run>true</run></test>
</scenario>
"#,
    ),
    (
        "scenarios/quiet.xml",
        r#"<scenario name="quiet">
  <test name="hang" timeout="60" quiet-timeout="1"><run>echo started; sleep 600</run></test>
</scenario>
"#,
    ),
    (
        "scenarios/background.xml",
        r#"<scenario name="background">
  <test name="leave"><run>sleep 600 &amp; setsid sleep 601 &amp; echo left</run></test>
</scenario>
"#,
    ),
    (
        "scenarios/bad.xml",
        r#"<scenario name="bad">
  <test name="t">
    <bogus/>
  </test>
</scenario>
"#,
    ),
    (
        "scenarios/boot.xml",
        r#"<scenario name="boot">
  <test name="unit" timeout="30">
    <boot/>
    <expect>Press ENTER to see the list of tests.</expect>
    <send>*</send>
    <expect>got *</expect>
    <unity/>
  </test>
</scenario>
"#,
    ),
    ("README", "the test repository\n"),
];

/// A fake QEMU for `<boot/>` tests: a console that waits for input, prints
/// Unity lines, then hangs as a real guest would, so the verdict must stop it.
pub const FAKE_QEMU: &str = "echo 'Press ENTER to see the list of tests.'; read line; \
    echo \"got $line\"; echo 'a.c:1:t_one:PASS'; echo 'a.c:2:t_two:IGNORE: later'; \
    echo '2 Tests 0 Failures 1 Ignored'; exec sleep 600";

pub fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// A target that builds with `build` and boots [`FAKE_QEMU`].
pub fn target(build: &[&str]) -> TargetConfig {
    TargetConfig {
        env_script: None,
        build: strings(build),
        image: None,
        qemu: strings(&["sh", "-c", FAKE_QEMU]),
        fail_on: strings(&["Guru Meditation Error"]),
    }
}

/// Runs `git` in `dir` without this machine's configuration; returns its
/// trimmed standard output.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@t.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@t.invalid")
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A git repository with `files` on branch `main`.
pub fn make_repo(dir: &Path, files: &[(&str, &str)]) {
    std::fs::create_dir_all(dir).unwrap();
    git(dir, &["init", "-q", "-b", "main"]);
    for (path, content) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    // A link out of the checkout, which the worker must refuse to read.
    std::os::unix::fs::symlink("/etc/passwd", dir.join("scenarios/link.xml")).unwrap();
    git(dir, &["add", "-A"]);
    git(
        dir,
        &["-c", "commit.gpgsign=false", "commit", "-q", "-m", "init"],
    );
}

/// One test's farm.
pub struct Farm {
    pub dir: TempDir,
    pub name: String,
    pub config: Config,
    pub pool: DbPool,
    /// The worker's one slot, leased by [`Farm::start_next`].
    pub slots: SlotPool,
}

impl Farm {
    /// A farm named `name` (unique per test: queue ids derive from it)
    /// whose target is `target`, building the repository that `make_repo`
    /// creates at the path it is given.
    pub fn create(name: &str, target: TargetConfig, make_repo: impl FnOnce(&Path)) -> Self {
        Self::create_on(name, target, make_repo, None)
    }

    /// [`Farm::create`] on the database at `database` (a PostgreSQL URL),
    /// or on a SQLite file in the home (`None`).
    pub fn create_on(
        name: &str,
        target: TargetConfig,
        make_repo: impl FnOnce(&Path),
        database: Option<String>,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let repo = dir.path().join("repo");
        make_repo(&repo);
        let mut config = Config {
            home: home.clone(),
            database: Some(
                database
                    .clone()
                    .unwrap_or_else(|| home.join("testarena.db").to_string_lossy().into_owned()),
            ),
            default_target: "test".to_owned(),
            worker: WorkerConfig {
                id: Some(format!("w-{name}")),
                slots: 1,
                poll_interval_ms: 50,
                queue_timeout_s: 300,
                test_timeout_s: 60,
                abort_grace_s: GRACE_S,
                heartbeat_s: 1,
                lost_after_s: 3,
                keep_workspace: false,
                retry_errors: 0,
                build_cache_mib: 0,
                log_buffer_mib: 256,
            },
            repos: vec![RepoConfig {
                name: "fw".to_owned(),
                url: repo.to_string_lossy().into_owned(),
                ssh_key: None,
                known_hosts: None,
                token_env: None,
                ..Default::default()
            }],
            targets: BTreeMap::from([("test".to_owned(), target)]),
            ..Config::default()
        };
        if database.is_some() {
            // On PostgreSQL an outage is seen within a second or two.
            config.database_pool.connect_timeout_s = 1;
        }
        config.finish().unwrap();
        let size = if database.is_some() { 8 } else { 4 };
        let pool = db::open_migrated(
            &config.database_location().unwrap(),
            config.pool_options(size),
        )
        .unwrap();
        Self {
            dir,
            name: name.to_owned(),
            config,
            pool,
            slots: SlotPool::new(1),
        }
    }

    /// A farm over a fresh repository holding [`SCENARIOS`].
    pub fn new(name: &str, target: TargetConfig) -> Self {
        Self::create(name, target, |repo| make_repo(repo, SCENARIOS))
    }

    pub fn home(&self) -> Home {
        Home::new(self.config.home.clone())
    }

    pub fn context(&self) -> Context {
        Context {
            config: Arc::new(self.config.clone()),
            home: self.home(),
            db: Db::new(self.pool.clone()),
            worker_id: self.config.worker_id(),
            nudges: Nudges::default(),
        }
    }

    /// Stores a waiting queue of `scenarios` on `branch`; returns its id.
    pub fn submit(&self, branch: &str, scenarios: &[&str], timeout_s: Option<i32>) -> String {
        self.submit_as("", branch, scenarios, timeout_s)
    }

    /// [`Farm::submit`] with `suffix` added to the queue id.
    pub fn submit_as(
        &self,
        suffix: &str,
        branch: &str,
        scenarios: &[&str],
        timeout_s: Option<i32>,
    ) -> String {
        self.store_queue(suffix, branch, None, scenarios, timeout_s)
    }

    /// Stores a waiting queue whose commit was pinned at submission (as the
    /// app does) or not (`None`: a queue stored before commits were pinned).
    pub fn submit_pinned(
        &self,
        suffix: &str,
        branch: &str,
        commit: Option<&str>,
        scenarios: &[&str],
    ) -> String {
        self.store_queue(suffix, branch, commit, scenarios, None)
    }

    fn store_queue(
        &self,
        suffix: &str,
        branch: &str,
        commit: Option<&str>,
        scenarios: &[&str],
        timeout_s: Option<i32>,
    ) -> String {
        let id = format!("{}-{}{suffix}", self.name, std::process::id());
        let queue = NewQueue {
            id: id.clone(),
            repo: "fw".to_owned(),
            branch: branch.to_owned(),
            commit_sha: commit.map(str::to_owned),
            target: "test".to_owned(),
            owner: "tester".to_owned(),
            priority: 0,
            timeout_s,
            created_at: store::now(),
            no_cache: false,
        };
        let tasks: Vec<NewTask> = scenarios
            .iter()
            .enumerate()
            .map(|(i, s)| NewTask {
                id: format!("{id}.{}", i + 1),
                scenario: (*s).to_owned(),
                only: None,
            })
            .collect();
        let mut conn = self.pool.get().unwrap();
        store::create_queue(&mut conn, &queue, &tasks).unwrap();
        id
    }

    pub fn queue(&self, id: &str) -> QueueRow {
        let mut conn = self.pool.get().unwrap();
        store::get_queue(&mut conn, id).unwrap().unwrap()
    }

    pub fn detail(&self, id: &str) -> QueueDetail {
        let mut conn = self.pool.get().unwrap();
        store::queue_detail(&mut conn, id).unwrap().unwrap()
    }

    /// Claims the next queue as the worker does and starts running it.
    pub fn start_next(
        &self,
        shutdown: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<(Status, String)> {
        let mut conn = self.pool.get().unwrap();
        let queue = store::claim_next(&mut conn, &self.config.worker_id())
            .unwrap()
            .expect("a waiting queue");
        let ctx = self.context();
        let lease = self.slots.take().expect("the farm's slot is free");
        tokio::spawn(async move { runner::run_queue(&ctx, queue, lease, shutdown).await })
    }

    /// Claims and runs the next queue to its end.
    pub async fn run_next(&self) -> (Status, String) {
        let (_tx, rx) = watch::channel(false);
        self.start_next(rx).await.unwrap()
    }

    pub fn queue_dir(&self, id: &str) -> PathBuf {
        self.home().queue_dir(id)
    }

    /// The checkout of the farm's repository kept by the worker's slot 0.
    pub fn workspace(&self) -> PathBuf {
        self.home().workspace(&self.config.worker_id(), 0, "fw")
    }

    pub fn read(&self, path: impl AsRef<Path>) -> String {
        let path = path.as_ref();
        String::from_utf8_lossy(
            &std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
        )
        .into_owned()
    }

    /// The config as a TOML file, for the binary.
    pub fn config_file(&self) -> PathBuf {
        let path = self.dir.path().join("config.toml");
        std::fs::write(&path, self.config.to_toml()).unwrap();
        path
    }
}

/// Polls `f` every 25 ms until it returns `Some`, failing after `limit`.
pub async fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A status and its reason, as stored.
pub type StatusReason = (String, Option<String>);

/// The status and reason of the queue, and of each task.
pub fn statuses(detail: &QueueDetail) -> (String, Option<String>, Vec<StatusReason>) {
    (
        detail.queue.status.clone(),
        detail.queue.status_reason.clone(),
        detail
            .tasks
            .iter()
            .map(|(t, _)| (t.status.clone(), t.status_reason.clone()))
            .collect(),
    )
}
