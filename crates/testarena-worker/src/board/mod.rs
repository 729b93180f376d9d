//! Running a queue on a real board (DESIGN section 10): the board's
//! commands (`power_on`, `flash` into `flash.log`, `reset`, `power_off`),
//! its serial console ([`serial`]) read under the same limits as a QEMU
//! boot, and board faults — the farm's failures, not the code's: the task
//! ends `error` with `board <id>: <what>`, the board gets a health check,
//! and the queue may be retried on another board.
//!
//! Below `testrun` and `runner`; imports only `process`, `supervise`,
//! `logfile` and `db`.

pub mod serial;

use std::path::Path;
use std::time::Duration;

use testarena_domain::config::{BoardConfig, Config, Placeholders};
use testarena_domain::models::QueueRow;
use testarena_domain::paths::Home;
use testarena_domain::store;
use tokio::time::{Instant, sleep_until};

use crate::db::Db;
use crate::logfile::LogFile;
use crate::process::{self, Spec};
use crate::supervise::{self, Ended, Limits, Sink, Stop, Watch};
use crate::{Error, Result};
use serial::{Console, SerialEvent};

/// The longest a `reset` or power command may take.
const COMMAND_TIMEOUT_S: u64 = 30;
/// How long a board's console must stay quiet after the verdict before its
/// log is closed, and the most that is waited for that.
const DRAIN_QUIET: Duration = Duration::from_millis(200);
const DRAIN_MAX: Duration = Duration::from_secs(2);
/// The timeline and log name of the board commands' output.
pub const FLASH_LOG: &str = "flash.log";

/// A queue's board: its config, as the claim leased it.
#[derive(Debug, Clone)]
pub struct BoardRun {
    pub config: BoardConfig,
}

impl BoardRun {
    /// The board `queue` was claimed with (`ran_on`), if it is one of this
    /// worker's.
    pub fn of(config: &Config, queue: &QueueRow) -> Option<Self> {
        let id = queue.ran_on.as_deref().filter(|r| *r != "qemu")?;
        config
            .boards
            .iter()
            .find(|b| b.id == id)
            .map(|b| Self { config: b.clone() })
    }

    pub fn id(&self) -> &str {
        &self.config.id
    }

    /// `TESTARENA_BOARD` and `TESTARENA_SERIAL` for `<run>` tests.
    pub fn env(&self) -> [(String, String); 2] {
        [
            ("TESTARENA_BOARD".to_owned(), self.config.id.clone()),
            ("TESTARENA_SERIAL".to_owned(), self.config.serial.clone()),
        ]
    }

    fn flash_log(home: &Home, queue_id: &str) -> std::path::PathBuf {
        home.queue_dir(queue_id).join(FLASH_LOG)
    }

    /// Runs one board command (`what`) with its output in `flash.log`.
    /// `Ok(Err(what failed))` is a board fault; `Err` the worker's own.
    async fn command(
        &self,
        what: &str,
        argv: &[String],
        p: &Placeholders<'_>,
        watch: &Watch,
        home: &Home,
        timeout_s: u64,
    ) -> Result<std::result::Result<(), String>> {
        let argv = p.expand(&self.config.expand(argv));
        let mut log = LogFile::append(&Self::flash_log(home, &watch.queue_id));
        log.write(format!("$ {}\n", argv.join(" ")).as_bytes())
            .await?;
        let spec = Spec {
            argv: &argv,
            cwd: p.build_dir.parent().unwrap_or(p.build_dir),
            base_env: None,
            env: &[],
            queue_id: &watch.queue_id,
            stdin: false,
        };
        let child = match process::spawn(&spec) {
            Ok(child) => child,
            Err(e) => {
                log.close().await?;
                return Ok(Err(format!("{what}: {e}")));
            }
        };
        let mut sink = crate::testrun::LogSink { log };
        let limits = Limits {
            timeout_s: Some(timeout_s),
            quiet_timeout_s: None,
        };
        let ended = supervise::supervise(watch, child, limits, &mut sink).await?;
        sink.log.close().await?;
        Ok(match ended {
            Ended::Exited(s) if s.success() => Ok(()),
            Ended::Exited(s) => Err(format!("{what} failed (exit {})", supervise::exit_code(s))),
            Ended::Timeout(t) => Err(format!("{what} timed out after {t} s")),
            Ended::Stopped(stop) => return Ok(Err(format!("stopped: {}", stop.reason()))),
            Ended::Done | Ended::Quiet(_) => Err(format!("{what} ended unexpectedly")),
        })
    }

    /// `power_on` (if configured), then `flash` once. A failure is a board
    /// fault ([`Error::Board`]). A successful flash is counted.
    pub async fn prepare(
        &self,
        p: &Placeholders<'_>,
        watch: &Watch,
        home: &Home,
        lost_after_s: u64,
    ) -> Result<()> {
        if let Some(on) = &self.config.power_on
            && let Err(what) = self
                .command("power_on", on, p, watch, home, COMMAND_TIMEOUT_S)
                .await?
        {
            return Err(self.fault(watch, &what, lost_after_s).await);
        }
        match self
            .command(
                "flash",
                &self.config.flash,
                p,
                watch,
                home,
                self.config.flash_timeout_s,
            )
            .await?
        {
            Ok(()) => {
                // Fenced like every write of the run: a run the farm
                // ended meanwhile counts no flash.
                let id = self.config.id.clone();
                watch
                    .db
                    .run_fenced(watch.fence.as_ref(), move |c| {
                        store::boards::record_flash(c, &id)
                    })
                    .await?;
                Ok(())
            }
            Err(what) => Err(self.fault(watch, &what, lost_after_s).await),
        }
    }

    /// `power_off`, if configured; a failure is logged, the verdict stands.
    pub async fn power_off(&self, p: &Placeholders<'_>, watch: &Watch, home: &Home) {
        if let Some(off) = &self.config.power_off {
            match self
                .command("power_off", off, p, watch, home, COMMAND_TIMEOUT_S)
                .await
            {
                Ok(Ok(())) => {}
                Ok(Err(what)) => tracing::warn!(board = %self.id(), what, "power_off failed"),
                Err(e) => tracing::warn!(board = %self.id(), error = %e, "power_off failed"),
            }
        }
    }

    /// Opens the console, then resets the board (its `reset`, else a
    /// DTR/RTS pulse), so the first boot line is read. A failure is a
    /// board fault.
    pub async fn open_and_reset(
        &self,
        p: &Placeholders<'_>,
        watch: &Watch,
        home: &Home,
        lost_after_s: u64,
    ) -> Result<Console> {
        let (path, baud) = (self.config.serial.clone(), self.config.baud);
        let reenumerate = Duration::from_secs(self.config.reenumerate_s);
        let opened = crate::db::blocking(move || {
            Ok(serial::open_console(Path::new(&path), baud, reenumerate))
        })
        .await?;
        let console = match opened {
            Ok(c) => c,
            Err(what) => return Err(self.fault(watch, &what, lost_after_s).await),
        };
        let reset = match &self.config.reset {
            Some(reset) => {
                self.command("reset", reset, p, watch, home, COMMAND_TIMEOUT_S)
                    .await?
            }
            None => {
                let path = self.config.serial.clone();
                crate::db::blocking(move || Ok(serial::pulse_reset(Path::new(&path), baud))).await?
            }
        };
        match reset {
            Ok(()) => Ok(console),
            Err(what) => Err(self.fault(watch, &what, lost_after_s).await),
        }
    }

    /// Records a board fault and asks for a health check; the error to end
    /// the queue with, retryable when another board could run it. Fenced: a
    /// run the farm ended meanwhile records no fault (and is not retried by
    /// this worker).
    pub async fn fault(&self, watch: &Watch, what: &str, lost_after_s: u64) -> Error {
        let reason = format!("board {}: {what}", self.config.id);
        tracing::warn!(board = %self.config.id, what, "board fault");
        let (board, queue_id) = (self.config.id.clone(), watch.queue_id.clone());
        let retry = watch
            .db
            .run_fenced(watch.fence.as_ref(), move |c| {
                store::boards::record_fault(c, &board)?;
                if let Err(e) = store::board_queues::request_health_check(c, &board) {
                    tracing::info!(board = %board, error = %e, "no health check after the fault");
                }
                let live = testarena_domain::db::db_now(c)?
                    - chrono::Duration::seconds(i64::try_from(lost_after_s).unwrap_or(60));
                match store::get_queue(c, &queue_id)? {
                    Some(q) => store::boards::another_board_for(c, &q, &board, live),
                    None => Ok(false),
                }
            })
            .await
            .unwrap_or(false);
        board_went_bad_hook(&self.config.id, &reason);
        Error::Board { reason, retry }
    }
}

/// Called when a board fault or a failed health check takes a board out
/// of scheduling: where notifications (`board.bad`) hook in.
pub fn board_went_bad_hook(board: &str, reason: &str) {
    tracing::info!(board, reason, "board needs attention");
}

/// Reads a board's console into `sink` until the sink has its verdict or a
/// limit hits, as [`supervise::supervise`] does for QEMU's output. A
/// device that came back is noted in the log (through `sink`, on a line of
/// its own); one that stayed away is `Err(what)`, a board fault.
pub async fn read_console<S: Sink + Send>(
    watch: &Watch,
    console: &mut Console,
    limits: Limits,
    sink: &mut S,
) -> Result<std::result::Result<Ended, String>> {
    let started = Instant::now();
    let far = started + Duration::from_secs(86_400 * 365);
    let deadline = limits
        .timeout_s
        .map_or(far, |s| started + Duration::from_secs(s));
    let quiet = limits.quiet_timeout_s.map(Duration::from_secs);
    let mut last_output = started;
    let mut poll = tokio::time::interval_at(started + supervise::ABORT_POLL, supervise::ABORT_POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut at_line_start = true;
    loop {
        let quiet_deadline = quiet.map_or(far, |q| last_output + q);
        tokio::select! {
            event = console.events.recv() => match event {
                Some(SerialEvent::Bytes(bytes)) => {
                    last_output = Instant::now();
                    at_line_start = bytes.last() == Some(&b'\n');
                    if sink.piece(&bytes).await? {
                        return drain(console, sink).await.map(|()| Ok(Ended::Done));
                    }
                }
                Some(SerialEvent::Reconnected(after)) => {
                    last_output = Instant::now();
                    let line = format!(
                        "{}[testarena] serial device reconnected after {} ms\n",
                        if at_line_start { "" } else { "\n" },
                        after.as_millis()
                    );
                    at_line_start = true;
                    if sink.piece(line.as_bytes()).await? {
                        return drain(console, sink).await.map(|()| Ok(Ended::Done));
                    }
                }
                Some(SerialEvent::Gone(what)) => return Ok(Err(what)),
                None => return Ok(Err("serial reader stopped".to_owned())),
            },
            () = sleep_until(deadline) => return Ok(Ok(Ended::Timeout(limits.timeout_s.unwrap_or_default()))),
            () = sleep_until(quiet_deadline) => return Ok(Ok(Ended::Quiet(limits.quiet_timeout_s.unwrap_or_default()))),
            _ = poll.tick() => {
                if let Some(stop) = watch.check().await {
                    return Ok(Ok(Ended::Stopped(stop)));
                }
            }
        }
    }
}

/// After the verdict, what the board still says goes to the log too (the
/// rest of the Unity summary, `Returned from app_main()`), as QEMU's output
/// is drained when it is stopped: until it has been quiet for
/// [`DRAIN_QUIET`], at most [`DRAIN_MAX`].
async fn drain<S: Sink + Send>(console: &mut Console, sink: &mut S) -> Result<()> {
    let until = Instant::now() + DRAIN_MAX;
    while let Ok(Some(SerialEvent::Bytes(bytes))) = tokio::time::timeout(
        DRAIN_QUIET.min(until.saturating_duration_since(Instant::now())),
        console.events.recv(),
    )
    .await
    {
        sink.piece(&bytes).await?;
        if Instant::now() >= until {
            break;
        }
    }
    Ok(())
}

/// Whether a stop is one (kept for the compiler's exhaustiveness checks).
pub fn is_stop(ended: &Ended) -> Option<&Stop> {
    match ended {
        Ended::Stopped(s) => Some(s),
        _ => None,
    }
}

/// The worker's boards as registrations, each with whether its device
/// exists now (a missing one is logged, and the board is `offline`).
pub fn registrations(config: &Config) -> Vec<store::boards::BoardRegistration> {
    config
        .boards
        .iter()
        .map(|b| {
            let present = Path::new(&b.serial).exists();
            store::boards::BoardRegistration {
                id: b.id.clone(),
                target: b.target.clone(),
                tags: b.sorted_tags(),
                serial: b.serial.clone(),
                baud: b.baud,
                present,
                health: b.health.as_ref().map(|h| {
                    (
                        h.repo.clone(),
                        h.branch.clone(),
                        h.scenario.clone(),
                        h.every_h,
                    )
                }),
            }
        })
        .collect()
}

/// Registers this worker's boards (at start and on every heartbeat) and
/// queues the health checks that are due. A board another live worker
/// holds is an error naming both.
pub async fn register(db: &Db, config: &Config, worker_id: &str) -> Result<Vec<String>> {
    if config.boards.is_empty() {
        return Ok(Vec::new());
    }
    let regs = registrations(config);
    for r in regs.iter().filter(|r| !r.present) {
        tracing::warn!(board = %r.id, serial = %r.serial, "serial device missing: board offline");
    }
    let (id, lost) = (worker_id.to_owned(), config.worker.lost_after_s);
    db.run(move |c| {
        let live = testarena_domain::db::db_now(c)?
            - chrono::Duration::seconds(i64::try_from(lost).unwrap_or(60));
        let rows = store::boards::register_boards(c, &id, &regs, live)?;
        for board in store::boards::due_health_checks(c, &id)? {
            let q = store::board_queues::request_health_check(c, &board)?;
            tracing::info!(board = %board, queue.id = %q.id, "health check queued");
        }
        Ok(rows
            .into_iter()
            .filter(|r| r.status != "offline")
            .map(|r| r.id)
            .collect())
    })
    .await
}
