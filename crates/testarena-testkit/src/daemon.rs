//! Real child processes: a daemon in its own process group whose output is
//! appended to a file, stopped with its whole group (SIGTERM, then SIGKILL)
//! when dropped; and operator sub-commands run to their end.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

use crate::error::{Error, IoContext as _, Result};

/// How long a stopped daemon gets between SIGTERM and SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// Environment variables that would override a daemon's `--config`.
const OVERRIDES: [&str; 4] = [
    "TESTARENA_CONFIG",
    "TESTARENA_HOME",
    "TESTARENA_DATABASE",
    "TESTARENA_LISTEN",
];

/// A file opened for appending (a daemon's log survives its restarts).
pub fn append(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .what(|| format!("opening {}", path.display()))
}

/// `binary --config config args…`, with no environment override of the
/// config and `RUST_LOG` set.
pub fn command(binary: &Path, config: &Path, args: &[&str], rust_log: &str) -> Command {
    let mut cmd = Command::new(binary);
    cmd.arg("--config").arg(config).args(args);
    cmd.env("RUST_LOG", rust_log);
    for var in OVERRIDES {
        cmd.env_remove(var);
    }
    cmd
}

/// Runs `cmd` to its end with `stdin` as its input (a password for
/// `user add --password-stdin`) and its output appended to `log`.
pub fn run_to_end(mut cmd: Command, stdin: &str, log: &Path) -> Result<()> {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(append(log)?)
        .stderr(append(log)?)
        .spawn()
        .what(|| format!("starting {what}"))?;
    if let Some(mut input) = child.stdin.take() {
        input
            .write_all(stdin.as_bytes())
            .what(|| format!("writing to {what}"))?;
    }
    let status = child.wait().what(|| format!("waiting for {what}"))?;
    if !status.success() {
        let text = crate::procs::read_lossy(log);
        let tail: String = text.lines().rev().take(20).collect::<Vec<_>>().join("\n");
        return Err(Error::Command {
            what,
            status,
            output: format!("\n{tail}"),
        });
    }
    Ok(())
}

/// A running daemon. See the module documentation.
#[derive(Debug)]
pub struct Daemon {
    child: Child,
    name: String,
    log: PathBuf,
    /// Stopped or waited for already: nothing left to do on drop.
    done: bool,
}

impl Daemon {
    /// Starts `cmd` in a process group of its own (so that stopping it
    /// stops everything it started), stdin closed, stdout and stderr
    /// appended to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Result<Self> {
        cmd.stdin(Stdio::null())
            .stdout(append(log)?)
            .stderr(append(log)?);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().what(|| format!("starting {name}"))?;
        Ok(Self {
            child,
            name: name.to_owned(),
            log: log.to_owned(),
            done: false,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn pid_t(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id()).unwrap_or(i32::MAX))
    }

    /// Whether it still runs (not even a zombie).
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Everything it printed so far.
    pub fn output(&self) -> String {
        crate::procs::read_lossy(&self.log)
    }

    /// Sends `signal` to the daemon alone (not its group: what it does
    /// with its children is what is tested) and waits for it to exit.
    pub fn signal_and_wait(mut self, signal: Signal) -> Result<ExitStatus> {
        kill(self.pid_t(), signal)
            .map_err(|e| Error::Other(format!("kill -{signal} {}: {e}", self.name)))?;
        let status = self
            .child
            .wait()
            .what(|| format!("waiting for {}", self.name))?;
        // What its group still holds stays: the test looks at it.
        self.done = true;
        Ok(status)
    }

    /// Sends `signal` to its whole group at once (a crash: open
    /// connections break) and waits for it.
    pub fn kill_group(mut self, signal: Signal) {
        let _ = killpg(self.pid_t(), signal);
        let _ = self.child.wait();
        self.done = true;
    }

    /// SIGTERM to its group, SIGKILL after `grace` if it has not exited,
    /// then SIGKILL to whatever is left of the group.
    pub fn stop(&mut self, grace: Duration) {
        let group = self.pid_t();
        if self.running() {
            let _ = killpg(group, Signal::SIGTERM);
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline && self.running() {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let _ = killpg(group, Signal::SIGKILL);
        let _ = self.child.wait();
        self.done = true;
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if !self.done {
            self.stop(STOP_GRACE);
        }
    }
}
