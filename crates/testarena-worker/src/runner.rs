//! One claimed queue, from checkout to verdict: fetch the mirror, move the
//! slot's checkout of the repository to the queue's commit (the one pinned
//! at submission; a queue stored without one resolves its branch here),
//! source the target's `env_script`, build, package, run each task's
//! scenario, then end the queue's files around its verdict
//! ([`crate::workspace::end_queue`]). Every step watches the queue's abort
//! request, its deadline and the worker's shutdown; nothing started for a
//! queue outlives it. File work (the env file, the scenario, the build
//! directory) runs on the blocking pool.
//!
//! Verdicts (DESIGN section 4): `failed` when the code under test failed (a
//! build, a test), `error` when the farm did (git, a missing program, a bad
//! scenario), `aborted` for a user's abort, the queue timeout or the worker
//! stopping. Internal errors end the queue `error` with their message; a
//! full disk with "disk full: ..." (DESIGN section 9).
//!
//! On PostgreSQL (DESIGN section 13) the queue's folder is shipped to the
//! database as it grows ([`Shipper`]), every write of the run passes its
//! [`Fence`] and waits out a database outage ([`Db::run_fenced`]), and a
//! run the farm ended meanwhile (fenced) is killed at once and writes
//! nothing more: no results, no end, no `junit.xml`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use testarena_domain::config::{Config, Placeholders, RepoConfig, TargetConfig};
use testarena_domain::db::Location;
use testarena_domain::git::{CheckoutOutcome, GitError, Mirror};
use testarena_domain::models::{QueueRow, TaskRow};
use testarena_domain::paths::Home;
use testarena_domain::scenario;
use testarena_domain::status::Status;
use testarena_domain::store;
use testarena_domain::store::logs::{self, Fence};
use tokio::sync::watch;
use tracing::Instrument as _;

use crate::cache::{self, CacheUse, QueueBuild};
use crate::db::{self, Db};
use crate::finish::{Ending, finish};
use crate::inputs::{parse_env, read_scenario};
use crate::logfile::{LogFile, Timeline};
use crate::nudge::Nudges;
use crate::process::{self, Spec};
use crate::ship::Shipper;
use crate::supervise::{self, Ended, Limits, Watch};
use crate::testrun::{LogSink, TaskContext};
use crate::verdict::End;
use crate::workspace::{BUILD_DIR, Lease};
use crate::{Error, attempts};

/// What every queue run shares: the config, the files, the database.
#[derive(Debug, Clone)]
pub struct Context {
    pub config: Arc<Config>,
    pub home: Home,
    pub db: Db,
    pub worker_id: String,
    /// What wakes a running queue when the database says it changed.
    pub nudges: Nudges,
}

impl Context {
    /// Whether the database is PostgreSQL: the logs are shipped to it and
    /// the runs' writes are fenced.
    pub fn postgres(&self) -> bool {
        matches!(self.config.database_location(), Ok(Location::Postgres(_)))
    }
}

type Flow<T> = std::result::Result<T, End>;

/// Runs a queue this worker has claimed, in the slot `lease` gives it, to
/// its end and records the result. Returns the final status and reason.
pub async fn run_queue(
    ctx: &Context,
    queue: QueueRow,
    lease: Lease,
    shutdown: watch::Receiver<bool>,
) -> (Status, String) {
    let span = tracing::info_span!("queue", queue.id = %queue.id, slot = lease.index());
    run(ctx, queue, lease, shutdown).instrument(span).await
}

async fn run(
    ctx: &Context,
    queue: QueueRow,
    lease: Lease,
    shutdown: watch::Receiver<bool>,
) -> (Status, String) {
    let w = &ctx.config.worker;
    let timeout_s = queue
        .timeout_s
        .and_then(|t| u64::try_from(t).ok())
        .filter(|t| *t > 0)
        .unwrap_or(w.queue_timeout_s);
    let fence = ctx.postgres().then(|| Fence {
        queue_id: queue.id.clone(),
        worker_id: ctx.worker_id.clone(),
        attempt: queue.attempt,
    });
    // Until the run returns: an abort notified meanwhile wakes its poll.
    let nudge = ctx.nudges.register(&queue.id);
    let mut watch = Watch {
        nudge: nudge.notify(),
        db: ctx.db.clone(),
        queue_id: queue.id.clone(),
        deadline: tokio::time::Instant::now() + Duration::from_secs(timeout_s),
        shutdown,
        grace: Duration::from_secs(w.abort_grace_s),
        fence: fence.clone(),
        ship: None,
    };
    // Before the shipper looks at the folder: the earlier attempt's files
    // move first, here and in the database.
    let moved = match queue.attempt {
        1 => None,
        attempt => Some(archive_earlier(ctx, &watch, attempt - 1).await),
    };
    let shipper = match &fence {
        Some(fence) => {
            let dir = ctx.home.queue_dir(&queue.id);
            let shipper = Shipper::start(&ctx.db, dir, fence.clone(), w.log_buffer_mib).await;
            watch.ship = Some(shipper.state());
            Some(shipper)
        }
        None => None,
    };
    let timeline = Timeline::open(&ctx.home.queue_log(&queue.id));
    let early_end = match moved {
        Some(Err(end)) => Some(end),
        Some(Ok(line)) => {
            if let Some(line) = line {
                timeline.line(&line);
            }
            None
        }
        None => None,
    };
    timeline.line(&format!(
        "claimed by worker {} (branch {}, target {}, timeout {timeout_s} s{})",
        ctx.worker_id,
        queue.branch,
        queue.target,
        attempts::attempt_suffix(queue.attempt)
    ));
    tracing::info!(branch = %queue.branch, commit = ?queue.commit_sha, "queue started");
    let (end, build_dir) = match early_end.map_or_else(|| setup(ctx, &queue), Err) {
        Ok((repo, target)) => {
            let workspace = ctx
                .home
                .workspace(&ctx.worker_id, lease.index(), &repo.name);
            let mut run = QueueRun {
                ctx,
                queue: &queue,
                watch: &watch,
                timeline: &timeline,
                build_dir: workspace.join(BUILD_DIR),
                workspace,
            };
            let end = match run.execute(repo, &target).await {
                Ok(end) | Err(end) => end,
            };
            (end, Some(run.build_dir))
        }
        Err(end) => (end, None),
    };
    let ending = Ending {
        queue_id: &queue.id,
        watch: &watch,
        timeline: &timeline,
        build_dir,
        shipper,
    };
    finish(ctx, ending, lease, &end).await;
    (end.status, end.reason)
}

/// Moves what attempt `earlier` left (it carries the same queue id) before
/// this one starts anything: its processes on this host, its logs here and,
/// on PostgreSQL, in the database. Returns the timeline's line about it.
async fn archive_earlier(
    ctx: &Context,
    watch: &Watch,
    earlier: i32,
) -> std::result::Result<Option<String>, End> {
    process::stop(None, Some(&watch.queue_id), watch.grace).await;
    let (home, id) = (ctx.home.clone(), watch.queue_id.clone());
    let mut moved = match db::blocking(move || attempts::archive(&home, &id, earlier)).await {
        Ok(moved) => moved.into_iter().map(str::to_owned).collect(),
        Err(e) => {
            tracing::error!(error = %e, "cannot move the earlier attempt's logs");
            Vec::new()
        }
    };
    if let Some(fence) = watch.fence.clone() {
        let stored = ctx
            .db
            .run_fenced(watch.fence.as_ref(), move |c| {
                logs::archive_attempt(c, &fence, earlier)
            })
            .await?;
        for path in stored {
            let name = path.split('/').next().unwrap_or_default().to_owned();
            if !moved.contains(&name) {
                moved.push(name);
            }
        }
    }
    Ok((!moved.is_empty()).then(|| {
        format!(
            "attempt {earlier}'s {} moved to attempts/{earlier}/",
            moved.join(", ")
        )
    }))
}

/// The queue's repository and target from the config.
fn setup(ctx: &Context, queue: &QueueRow) -> Flow<(RepoConfig, TargetConfig)> {
    let config = &ctx.config;
    let repo = config
        .repo(Some(&queue.repo))
        .ok_or_else(|| Error::Config(format!("repository {:?} is not configured", queue.repo)))?;
    let (_, target) = config
        .target(Some(&queue.target))
        .ok_or_else(|| Error::Config(format!("target {:?} is not configured", queue.target)))?;
    Ok((repo.clone(), target.clone()))
}

/// The state of one queue's run.
struct QueueRun<'a> {
    ctx: &'a Context,
    queue: &'a QueueRow,
    watch: &'a Watch,
    timeline: &'a Timeline,
    workspace: PathBuf,
    build_dir: PathBuf,
}

impl QueueRun<'_> {
    fn id(&self) -> &str {
        &self.queue.id
    }

    async fn execute(&mut self, repo: RepoConfig, target: &TargetConfig) -> Flow<End> {
        let url = repo.url.clone();
        let commit = self.checkout(repo).await?;
        let base_env = self.target_env(target).await?;
        let cache = self.cached_build(&url, &commit, target).await?;
        if cache.as_ref().is_none_or(|c| !c.restored) {
            self.build(target, base_env.as_deref()).await?;
            if let Some(cache) = cache {
                cache::keep(cache, &self.build_dir, self.timeline).await;
            }
        }
        let board = crate::board::BoardRun::of(&self.ctx.config, self.queue);
        if let Some(board) = &board {
            self.timeline
                .line(&format!("board {}: power on and flash", board.id()));
            board
                .prepare(
                    &self.placeholders(),
                    self.watch,
                    &self.ctx.home,
                    self.ctx.config.worker.lost_after_s,
                )
                .await?;
            self.timeline
                .line(&format!("board {}: flashed", board.id()));
        }
        let result = self.tasks(target, base_env.as_deref()).await;
        if let Some(board) = &board {
            board
                .power_off(&self.placeholders(), self.watch, &self.ctx.home)
                .await;
        }
        result
    }

    /// The build and image steps.
    async fn build(
        &mut self,
        target: &TargetConfig,
        base_env: Option<&[(OsString, OsString)]>,
    ) -> Flow<()> {
        let build = self.placeholders().expand(&target.build);
        let image = target.image.as_ref().map(|i| self.placeholders().expand(i));
        self.step("build", &build, &self.workspace.clone(), base_env)
            .await?;
        if let Some(image) = image {
            let build_dir = self.build_dir.clone();
            db::blocking(move || {
                std::fs::create_dir_all(&build_dir).map_err(|e| Error::io(&build_dir, e))
            })
            .await?;
            self.step("image", &image, &self.build_dir.clone(), base_env)
                .await?;
        }
        Ok(())
    }

    /// The queue's build from the worker's build cache, restored into the
    /// build directory when it is there ([`cache::look_up`]).
    async fn cached_build(
        &mut self,
        url: &str,
        commit: &str,
        target: &TargetConfig,
    ) -> Flow<Option<CacheUse>> {
        let queue_build = QueueBuild {
            home: &self.ctx.home,
            cap_mib: self.ctx.config.worker.build_cache_mib,
            queue_id: self.id(),
            no_cache: self.queue.no_cache,
            repo_url: url,
            commit,
            target_name: &self.queue.target,
            target,
            build_dir: &self.build_dir,
            timeline: self.timeline,
        };
        Ok(cache::look_up(&queue_build).await?)
    }

    fn placeholders(&self) -> Placeholders<'_> {
        Placeholders {
            home: self.ctx.home.root(),
            workspace: &self.workspace,
            build_dir: &self.build_dir,
            queue_id: &self.queue.id,
            task_id: "",
        }
    }

    /// Runs a git call off the async threads; gives up on it (it finishes
    /// in the background) if the queue must stop first.
    async fn git<T, F>(&self, f: F) -> Flow<std::result::Result<T, GitError>>
    where
        F: FnOnce() -> std::result::Result<T, GitError> + Send + 'static,
        T: Send + 'static,
    {
        tokio::select! {
            result = db::blocking(move || Ok(f())) => Ok(result?),
            stop = self.watch.stopped() => Err(stop.into()),
        }
    }

    /// Fetches the mirror and moves the slot's checkout to the queue's
    /// commit: the one pinned at submission, else the branch's tip now
    /// (a queue stored before commits were pinned), which is recorded.
    async fn checkout(&mut self, repo: RepoConfig) -> Flow<String> {
        let mirror = Arc::new(Mirror::new(&self.ctx.home.git_cache(), &repo));
        let timeout = self
            .watch
            .deadline
            .saturating_duration_since(tokio::time::Instant::now());
        let m = Arc::clone(&mirror);
        let fetched = self.git(move || m.fetch(timeout)).await??;
        self.timeline.line(&format!(
            "fetched {} in {} ms ({} bytes{})",
            repo.name,
            fetched.elapsed.as_millis(),
            fetched.received_bytes,
            if fetched.cloned { ", new mirror" } else { "" }
        ));
        let pinned = self.queue.commit_sha.clone();
        let sha = match &pinned {
            Some(sha) => sha.clone(),
            None => {
                let (m, branch) = (Arc::clone(&mirror), self.queue.branch.clone());
                let sha = self.git(move || m.resolve_branch(&branch)).await??;
                let (id, commit) = (self.id().to_owned(), sha.clone());
                self.ctx
                    .db
                    .run_fenced(self.watch.fence.as_ref(), move |c| {
                        store::set_commit(c, &id, &commit)
                    })
                    .await?;
                sha
            }
        };
        self.timeline
            .line(&format!("commit {sha} ({})", self.queue.branch));
        let (m, commit, dest) = (mirror, sha.clone(), self.workspace.clone());
        let outcome = match self.git(move || m.checkout(&commit, &dest)).await? {
            Ok(outcome) => outcome,
            Err(GitError::CommitNotFound { .. }) if pinned.is_some() => {
                return Err(End::new(
                    Status::Error,
                    format!("commit {sha} is not in the repository"),
                ));
            }
            Err(e) => return Err(e.into()),
        };
        self.timeline.line(&checked_out(&outcome));
        Ok(sha)
    }

    /// Sources the target's `env_script` once and returns the environment
    /// it exports, for every later step of the queue.
    async fn target_env(
        &mut self,
        target: &TargetConfig,
    ) -> Flow<Option<Vec<(OsString, OsString)>>> {
        let Some(script) = &target.env_script else {
            return Ok(None);
        };
        // Beside the workspace, not in the queue's log folder: the
        // environment may hold secrets and the logs are served.
        let env_file = self.workspace.with_extension("env");
        let argv = [
            "sh".to_owned(),
            "-c".to_owned(),
            ". \"$1\" >&2 && env -0 >\"$2\"".to_owned(),
            "sh".to_owned(),
            script.to_string_lossy().into_owned(),
            env_file.to_string_lossy().into_owned(),
        ];
        let result = self
            .step("env_script", &argv, &self.workspace.clone(), None)
            .await;
        let env = db::blocking(move || {
            let env = std::fs::read(&env_file).map_err(|e| Error::io(&env_file, e));
            let _ = std::fs::remove_file(&env_file);
            env
        })
        .await;
        result?;
        Ok(Some(parse_env(env?)))
    }

    /// Runs one build step (`env_script`, `build`, `image`) with its output
    /// in `build.log`.
    async fn step(
        &mut self,
        what: &str,
        argv: &[String],
        cwd: &Path,
        base_env: Option<&[(OsString, OsString)]>,
    ) -> Flow<()> {
        if let Some(stop) = self.watch.check().await {
            return Err(stop.into());
        }
        let mut log = LogFile::append(&self.ctx.home.build_log(self.id()));
        log.write(format!("$ {}\n", argv.join(" ")).as_bytes())
            .await?;
        self.timeline.line(&format!("{what} started"));
        let started = Instant::now();
        let spec = Spec {
            argv,
            cwd,
            base_env,
            env: &[],
            queue_id: self.id(),
            stdin: false,
        };
        let child = process::spawn(&spec).map_err(|e| End::new(Status::Error, e.to_string()))?;
        let mut sink = LogSink { log };
        let ended = supervise::supervise(self.watch, child, Limits::default(), &mut sink).await?;
        sink.log.close().await?;
        let took = started.elapsed().as_secs_f64();
        match ended {
            Ended::Exited(status) if status.success() => {
                self.timeline.line(&format!("{what} passed in {took:.1} s"));
                Ok(())
            }
            Ended::Exited(status) => {
                let code = supervise::exit_code(status);
                self.timeline
                    .line(&format!("{what} failed in {took:.1} s (exit {code})"));
                // The env_script belongs to the farm, the build to the code.
                let status = if what == "env_script" {
                    Status::Error
                } else {
                    Status::Failed
                };
                Err(End::new(status, format!("{what} failed (exit {code})")))
            }
            Ended::Stopped(stop) => Err(stop.into()),
            // A build step has no step timeout: the queue's deadline bounds it.
            Ended::Done | Ended::Timeout(_) | Ended::Quiet(_) => Err(End::new(
                Status::Error,
                format!("{what} ended unexpectedly"),
            )),
        }
    }

    async fn tasks(
        &mut self,
        target: &TargetConfig,
        base_env: Option<&[(OsString, OsString)]>,
    ) -> Flow<End> {
        let id = self.id().to_owned();
        let tasks = self
            .ctx
            .db
            .run_fenced(self.watch.fence.as_ref(), move |c| {
                store::tasks_of(c, &[id.as_str()])
            })
            .await?;
        let (mut failed, mut errored, mut farm) = (0, 0, 0);
        for task in &tasks {
            if let Some(stop) = self.watch.check().await {
                return Err(stop.into());
            }
            let task_id = task.id.clone();
            self.ctx
                .db
                .run_fenced(self.watch.fence.as_ref(), move |c| {
                    store::set_task(c, &task_id, Status::Running, None)
                })
                .await?;
            self.timeline
                .line(&format!("task {} started ({})", task.id, task.scenario));
            let span = tracing::info_span!("task", task.id = %task.id);
            let (status, reason, farm_failure) =
                self.task(task, target, base_env).instrument(span).await?;
            let task_id = task.id.clone();
            let r = reason.clone();
            self.ctx
                .db
                .run_fenced(self.watch.fence.as_ref(), move |c| {
                    store::set_task(c, &task_id, status, r.as_deref())
                })
                .await?;
            let reason = reason.map(|r| format!(": {r}")).unwrap_or_default();
            self.timeline
                .line(&format!("task {} {status}{reason}", task.id));
            match status {
                Status::Failed => failed += 1,
                Status::Error => errored += 1,
                _ => {}
            }
            farm += usize::from(farm_failure);
        }
        let total = tasks.len();
        let mut reasons = Vec::new();
        if failed > 0 {
            reasons.push(format!("{failed} of {total} tasks failed"));
        }
        if errored > 0 {
            reasons.push(format!("{errored} of {total} tasks had errors"));
        }
        let status = match (failed, errored) {
            (_, 1..) => Status::Error,
            (1.., _) => Status::Failed,
            _ => Status::Passed,
        };
        // Retried only when every error was the farm's and nothing failed.
        let farm_failure = errored > 0 && farm == errored && failed == 0;
        Ok(End {
            farm_failure,
            ..End::new(status, reasons.join(", "))
        })
    }

    /// Runs one task's scenario; returns its final status and reason, and
    /// whether its errors were all the farm's (a QEMU that would not start).
    async fn task(
        &mut self,
        task: &TaskRow,
        target: &TargetConfig,
        base_env: Option<&[(OsString, OsString)]>,
    ) -> Flow<(Status, Option<String>, bool)> {
        let (workspace, file) = (self.workspace.clone(), task.scenario.clone());
        let bytes = db::blocking(move || Ok(read_scenario(&workspace, &file))).await?;
        let parsed =
            bytes.and_then(|b| scenario::parse(&task.scenario, &b).map_err(|e| e.to_string()));
        let scenario = match parsed {
            Ok(s) => s,
            Err(message) => return Ok((Status::Error, Some(message), false)),
        };
        let ctx = TaskContext {
            watch: self.watch,
            home: &self.ctx.home,
            task_id: &task.id,
            workspace: &self.workspace,
            build_dir: &self.build_dir,
            target,
            base_env,
            default_timeout_s: self.ctx.config.worker.test_timeout_s,
            board: crate::board::BoardRun::of(&self.ctx.config, self.queue),
            lost_after_s: self.ctx.config.worker.lost_after_s,
        };
        let mut failures = Vec::new();
        let mut error = false;
        // A subset (`only`) runs just the tests it names.
        for test in scenario.tests.iter().filter(|t| task.runs(&t.name)) {
            if let Some(stop) = self.watch.check().await {
                return Err(stop.into());
            }
            self.timeline
                .line(&format!("test {}/{} started", task.id, test.name));
            let outcome = ctx.run_test(&scenario, test).await?.map_err(End::from)?;
            let took = outcome.duration.as_secs_f64();
            let message = outcome.message.clone().unwrap_or_default();
            let suffix = if message.is_empty() {
                String::new()
            } else {
                format!(": {message}")
            };
            let status = outcome.status;
            tracing::info!(test = %test.name, %status, message, "test finished");
            self.timeline.line(&format!(
                "test {}/{} {status} in {took:.1} s{suffix}",
                task.id, test.name
            ));
            match outcome.status {
                Status::Passed => {}
                Status::Error => {
                    error = true;
                    failures.push(message);
                }
                _ => failures.push(message),
            }
        }
        let status = if error {
            Status::Error
        } else if failures.is_empty() {
            Status::Passed
        } else {
            Status::Failed
        };
        let reason = failures.first().map(|first| match failures.len() {
            1 => first.clone(),
            n => format!("{first} (and {} more failed tests)", n - 1),
        });
        Ok((status, reason, error))
    }
}

/// The timeline's line for a checkout: whether the slot's tree was moved
/// (only what changed was written) or written whole, and why.
fn checked_out(outcome: &CheckoutOutcome) -> String {
    match (&outcome.remade, outcome.moved) {
        (_, true) => "checked out (moved the slot's tree)".to_owned(),
        (Some(why), false) => format!("checked out (tree made again: {why})"),
        (None, false) => "checked out (new tree)".to_owned(),
    }
}
