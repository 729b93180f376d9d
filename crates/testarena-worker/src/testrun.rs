//! One `<test>` of a scenario: a `<boot/>` (QEMU and the matcher) or a
//! `<run>` (`sh -c` in the checkout), its log and its verdict. The log is
//! complete on disk before the verdict is recorded.

use std::ffi::OsString;
use std::path::Path;
use std::time::{Duration, Instant};

use testarena_domain::config::{Placeholders, TargetConfig};
use testarena_domain::models::NewTestCase;
use testarena_domain::paths::Home;
use testarena_domain::scenario::{BootSpec, Scenario, TestKind, TestSpec};
use testarena_domain::status::Status;
use testarena_domain::store;
use testarena_domain::store::logs::Fence;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::Result;
use crate::db::Db;
use crate::logfile::LogFile;
use crate::matcher::{self, Event, Matcher, Verdict};
use crate::process::{self, Spec};
use crate::supervise::{self, Ended, Limits, Sink, Stop, Watch};

/// Everything a test of one task needs to know about its surroundings.
#[derive(Debug)]
pub struct TaskContext<'a> {
    pub watch: &'a Watch,
    pub home: &'a Home,
    pub task_id: &'a str,
    pub workspace: &'a Path,
    pub build_dir: &'a Path,
    pub target: &'a TargetConfig,
    /// The target's captured `env_script` environment, if it has one.
    pub base_env: Option<&'a [(OsString, OsString)]>,
    /// `worker.test_timeout_s`: a test's timeout when its scenario gives none.
    pub default_timeout_s: u64,
    /// The board the queue runs on; `None`: QEMU.
    pub board: Option<crate::board::BoardRun>,
    /// `worker.lost_after_s`, for telling whether another board's worker lives.
    pub lost_after_s: u64,
}

/// How one test ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestOutcome {
    /// `passed`, `failed` (the code under test) or `error` (the farm).
    pub status: Status,
    pub message: Option<String>,
    pub duration: Duration,
}

impl TaskContext<'_> {
    fn queue_id(&self) -> &str {
        &self.watch.queue_id
    }

    fn placeholders(&self) -> Placeholders<'_> {
        Placeholders {
            home: self.home.root(),
            workspace: self.workspace,
            build_dir: self.build_dir,
            queue_id: self.queue_id(),
            task_id: self.task_id,
        }
    }

    /// Runs `test` of `scenario` and records it as a test case. `Err(stop)`
    /// when the queue must stop (nothing is recorded).
    pub async fn run_test(
        &self,
        scenario: &Scenario,
        test: &TestSpec,
    ) -> Result<std::result::Result<TestOutcome, Stop>> {
        let log_path = self
            .home
            .test_log(self.queue_id(), self.task_id, &test.name);
        let started = Instant::now();
        let limits = Limits {
            timeout_s: Some(
                test.timeout_s
                    .or(scenario.timeout_s)
                    .unwrap_or(self.default_timeout_s),
            ),
            quiet_timeout_s: test.quiet_timeout_s,
        };
        let verdict = match &test.kind {
            TestKind::Boot(boot) => self.boot(test, boot, &log_path, limits).await?,
            TestKind::Run(run) => {
                let outcome = self.run(scenario, &run.command, &log_path, limits).await?;
                match &run.junit {
                    Some(file) => self.import_junit(&test.name, file, outcome).await?,
                    None => outcome,
                }
            }
        };
        let (status, message) = match verdict {
            Outcome::Verdict(Verdict::Passed) => (Status::Passed, None),
            Outcome::Verdict(Verdict::Failed(m)) => (Status::Failed, Some(m)),
            Outcome::FarmError(m) => (Status::Error, Some(m)),
            Outcome::Stopped(stop) => return Ok(Err(stop)),
        };
        let outcome = TestOutcome {
            status,
            message,
            duration: started.elapsed(),
        };
        let case = NewTestCase {
            name: test.name.clone(),
            status: outcome.status,
            duration_ms: Some(u64::try_from(outcome.duration.as_millis()).unwrap_or(u64::MAX)),
            message: outcome.message.clone(),
        };
        record(self.watch, self.task_id, case).await?;
        Ok(Ok(outcome))
    }

    async fn boot(
        &self,
        test: &TestSpec,
        boot: &BootSpec,
        log_path: &Path,
        limits: Limits,
    ) -> Result<Outcome> {
        if let Some(board) = &self.board {
            return self
                .boot_on_board(board, test, boot, log_path, limits)
                .await;
        }
        let p = self.placeholders();
        let mut argv = p.expand(&self.target.qemu);
        argv.extend(p.expand(&boot.qemu_args));
        let mut sink = BootSink {
            log: LogFile::append(log_path),
            matcher: Matcher::new(&test.name, boot, &self.target.fail_on),
            input: None,
            db: self.watch.db.clone(),
            fence: self.watch.fence.clone(),
            task_id: self.task_id.to_owned(),
        };
        let spec = Spec {
            argv: &argv,
            cwd: self.workspace,
            base_env: self.base_env,
            env: &[],
            queue_id: self.queue_id(),
            stdin: true,
        };
        let mut child = match process::spawn(&spec) {
            Ok(child) => child,
            Err(e) => return Ok(Outcome::FarmError(e.to_string())),
        };
        if let Some(stdin) = child.inner.stdin.take() {
            sink.input = Some(feed_stdin(stdin));
        }
        let start = sink.matcher.start();
        sink.handle(start).await?;
        let ended = supervise::supervise(self.watch, child, limits, &mut sink).await?;
        sink.log.close().await?;
        if let Some(verdict) = sink.matcher.verdict() {
            return Ok(Outcome::Verdict(verdict.clone()));
        }
        Ok(match ended {
            Ended::Exited(_) | Ended::Done => {
                let events = sink.matcher.finish();
                sink.handle(events).await?;
                let verdict = sink.matcher.verdict().cloned();
                Outcome::Verdict(verdict.unwrap_or(Verdict::Passed))
            }
            other => Outcome::from_limit(other),
        })
    }

    /// A `<boot/>` test on a board: the console opened before the reset,
    /// then the same matcher as on QEMU (`<qemu-arg>` is ignored). A board
    /// fault is an [`crate::Error::Board`].
    async fn boot_on_board(
        &self,
        board: &crate::board::BoardRun,
        test: &TestSpec,
        boot: &BootSpec,
        log_path: &Path,
        limits: Limits,
    ) -> Result<Outcome> {
        let mut sink = BootSink {
            log: LogFile::append(log_path),
            matcher: Matcher::new(&test.name, boot, &self.target.fail_on),
            input: None,
            db: self.watch.db.clone(),
            fence: self.watch.fence.clone(),
            task_id: self.task_id.to_owned(),
        };
        let p = self.placeholders();
        let mut console = board
            .open_and_reset(&p, self.watch, self.home, self.lost_after_s)
            .await?;
        let writer = console.writer();
        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
        tokio::spawn(async move {
            while let Some(bytes) = rx.recv().await {
                if writer.send(bytes).is_err() {
                    return;
                }
            }
        });
        sink.input = Some(tx);
        let start = sink.matcher.start();
        sink.handle(start).await?;
        let ended = crate::board::read_console(self.watch, &mut console, limits, &mut sink).await?;
        drop(console);
        sink.log.close().await?;
        let ended = match ended {
            Ok(ended) => ended,
            Err(what) => return Err(board.fault(self.watch, &what, self.lost_after_s).await),
        };
        if let Some(verdict) = sink.matcher.verdict() {
            return Ok(Outcome::Verdict(verdict.clone()));
        }
        Ok(match ended {
            Ended::Exited(_) | Ended::Done => {
                let events = sink.matcher.finish();
                sink.handle(events).await?;
                Outcome::Verdict(sink.matcher.verdict().cloned().unwrap_or(Verdict::Passed))
            }
            other => Outcome::from_limit(other),
        })
    }

    async fn run(
        &self,
        scenario: &Scenario,
        command: &str,
        log_path: &Path,
        limits: Limits,
    ) -> Result<Outcome> {
        let argv = ["sh", "-c", command].map(str::to_owned);
        let log_dir = self.home.task_dir(self.queue_id(), self.task_id);
        let path = |p: &Path| p.to_string_lossy().into_owned();
        let mut env = scenario.env.clone();
        env.extend([
            ("TESTARENA_WORKSPACE".to_owned(), path(self.workspace)),
            ("TESTARENA_BUILD_DIR".to_owned(), path(self.build_dir)),
            ("TESTARENA_QUEUE_ID".to_owned(), self.queue_id().to_owned()),
            ("TESTARENA_TASK_ID".to_owned(), self.task_id.to_owned()),
            ("TESTARENA_LOG_DIR".to_owned(), path(&log_dir)),
        ]);
        if let Some(board) = &self.board {
            env.extend(board.env());
        }
        let mut sink = LogSink {
            log: LogFile::append(log_path),
        };
        let spec = Spec {
            argv: &argv,
            cwd: self.workspace,
            base_env: self.base_env,
            env: &env,
            queue_id: self.queue_id(),
            stdin: false,
        };
        let child = match process::spawn(&spec) {
            Ok(child) => child,
            Err(e) => return Ok(Outcome::FarmError(e.to_string())),
        };
        let ended = supervise::supervise(self.watch, child, limits, &mut sink).await?;
        sink.log.close().await?;
        Ok(match ended {
            Ended::Exited(status) if status.success() => Outcome::Verdict(Verdict::Passed),
            Ended::Exited(status) => Outcome::Verdict(Verdict::Failed(matcher::exit_code_message(
                supervise::exit_code(status),
            ))),
            other => Outcome::from_limit(other),
        })
    }
}

impl TaskContext<'_> {
    /// `<run junit="file">`: records each `<testcase>` of the file the
    /// command wrote as `<test>/<classname>.<name>`; the test passes when
    /// the command did and no case failed. A missing or malformed file
    /// fails the test, saying why. Nothing is read when the queue stops.
    async fn import_junit(&self, test: &str, file: &str, outcome: Outcome) -> Result<Outcome> {
        if matches!(outcome, Outcome::Stopped(_) | Outcome::FarmError(_)) {
            return Ok(outcome);
        }
        let (workspace, f) = (self.workspace.to_owned(), file.to_owned());
        let cases =
            crate::db::blocking(move || Ok(crate::inputs::read_junit(&workspace, &f))).await?;
        let cases = match cases {
            Ok(cases) => cases,
            Err(message) => {
                let message = match outcome {
                    Outcome::Verdict(Verdict::Failed(m)) => format!("{m}; {message}"),
                    _ => message,
                };
                return Ok(Outcome::Verdict(Verdict::Failed(message)));
            }
        };
        let mut names = std::collections::HashSet::new();
        let mut failed = Vec::new();
        for case in &cases {
            let base = format!("{test}/{}", case.full_name());
            let mut name = base.clone();
            for n in 2.. {
                if names.insert(name.clone()) {
                    break;
                }
                name = format!("{base} #{n}");
            }
            if case.status == Status::Failed {
                failed.push(match &case.message {
                    Some(m) => format!("{name}: {m}"),
                    None => name.clone(),
                });
            }
            let record_case = NewTestCase {
                name,
                status: case.status,
                duration_ms: case.duration_ms,
                message: case.message.clone(),
            };
            record(self.watch, self.task_id, record_case).await?;
        }
        Ok(match (outcome, failed.first()) {
            (Outcome::Verdict(Verdict::Passed), None) => Outcome::Verdict(Verdict::Passed),
            (Outcome::Verdict(Verdict::Passed), Some(first)) => {
                let first = first.lines().next().unwrap_or_default();
                Outcome::Verdict(Verdict::Failed(format!(
                    "{} of {} JUnit cases failed: {first}",
                    failed.len(),
                    cases.len()
                )))
            }
            (other, _) => other,
        })
    }
}

/// Records a test case (a `<test>` or a Unity case) with its task's
/// counters, past the run's fence (waiting out a database outage).
pub async fn record(watch: &Watch, task_id: &str, case: NewTestCase) -> Result<()> {
    record_with(&watch.db, watch.fence.as_ref(), task_id, case).await
}

async fn record_with(
    db: &Db,
    fence: Option<&Fence>,
    task_id: &str,
    case: NewTestCase,
) -> Result<()> {
    let task_id = task_id.to_owned();
    db.run_fenced(fence, move |c| store::record_test_case(c, &task_id, &case))
        .await
}

/// What a test came to, before it is recorded.
#[derive(Debug)]
enum Outcome {
    Verdict(Verdict),
    FarmError(String),
    Stopped(Stop),
}

impl Outcome {
    /// The outcome of a step that a limit ended.
    fn from_limit(ended: Ended) -> Self {
        match ended {
            Ended::Timeout(s) => Outcome::Verdict(Verdict::Failed(matcher::timeout_message(s))),
            Ended::Quiet(s) => Outcome::Verdict(Verdict::Failed(matcher::quiet_message(s))),
            Ended::Stopped(stop) => Outcome::Stopped(stop),
            // Handled by the callers; kept total for the compiler.
            Ended::Exited(_) | Ended::Done => Outcome::Verdict(Verdict::Passed),
        }
    }
}

/// Writes what the matcher sends to QEMU's stdin, in order, without ever
/// blocking the output loop; dropping the sender closes stdin.
fn feed_stdin(mut stdin: tokio::process::ChildStdin) -> mpsc::UnboundedSender<Vec<u8>> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            if stdin.write_all(&bytes).await.is_err() || stdin.flush().await.is_err() {
                return;
            }
        }
    });
    tx
}

/// A plain log: build steps and `<run>` tests.
#[derive(Debug)]
pub struct LogSink {
    pub log: LogFile,
}

impl Sink for LogSink {
    async fn piece(&mut self, bytes: &[u8]) -> Result<bool> {
        self.log.write(bytes).await?;
        Ok(false)
    }
}

/// A boot test: the log, the matcher and QEMU's stdin.
#[derive(Debug)]
struct BootSink {
    log: LogFile,
    matcher: Matcher,
    input: Option<mpsc::UnboundedSender<Vec<u8>>>,
    db: Db,
    fence: Option<Fence>,
    task_id: String,
}

impl BootSink {
    /// Acts on the matcher's events; returns whether the verdict is known.
    async fn handle(&mut self, events: Vec<Event>) -> Result<bool> {
        let mut done = false;
        for event in events {
            match event {
                Event::Send(text) => {
                    let mut line = text.into_bytes();
                    line.push(b'\n');
                    if let Some(input) = &self.input {
                        // QEMU gone: the verdict follows from its output.
                        let _ = input.send(line);
                    }
                }
                Event::Case {
                    name,
                    status,
                    message,
                } => {
                    let case = NewTestCase {
                        name,
                        status,
                        duration_ms: None,
                        message,
                    };
                    record_with(&self.db, self.fence.as_ref(), &self.task_id, case).await?;
                }
                Event::Verdict(_) => done = true,
            }
        }
        Ok(done)
    }
}

impl Sink for BootSink {
    async fn piece(&mut self, bytes: &[u8]) -> Result<bool> {
        self.log.write(bytes).await?;
        let events = self.matcher.feed(bytes);
        self.handle(events).await
    }

    fn close_input(&mut self) {
        self.input = None;
    }
}
