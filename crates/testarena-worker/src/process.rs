//! Child processes: how every command the worker runs is started, read and
//! stopped.
//!
//! Every child gets its own process group (so a whole tree can be signalled
//! at once), the parent-death signal SIGKILL (so it dies with the worker even
//! when the worker is SIGKILLed) and `TESTARENA_QUEUE_ID` in its environment
//! (so a restarted worker finds leftovers that changed their process group,
//! by scanning `/proc/*/environ`). Commands are argv vectors; nothing here
//! builds a shell string.
//!
//! The parent-death signal belongs to the *thread* that forked: children are
//! spawned from async code only, whose runtime threads live as long as the
//! worker, never from `spawn_blocking` threads, which exit when idle.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::io;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use crate::Error;

/// The environment variable naming the queue a child belongs to.
pub const QUEUE_ENV: &str = "TESTARENA_QUEUE_ID";

/// How often a dying group is checked.
const POLL: Duration = Duration::from_millis(20);
/// How long SIGKILLed processes get to disappear before they count as survivors.
const KILL_WAIT: Duration = Duration::from_secs(2);
/// Bytes read from a pipe at once.
const READ_CHUNK: usize = 8 * 1024;
/// Output pieces in flight between the pipe readers and the consumer: a
/// flooding child waits on its pipe instead of filling the worker's memory.
const PIECES_IN_FLIGHT: usize = 64;

/// What to start.
#[derive(Debug, Clone)]
pub struct Spec<'a> {
    /// Program and arguments; never empty.
    pub argv: &'a [String],
    pub cwd: &'a Path,
    /// The environment to start from: `None` inherits the worker's, `Some`
    /// replaces it (a target's captured `env_script` environment).
    pub base_env: Option<&'a [(OsString, OsString)]>,
    /// Added on top of the base environment.
    pub env: &'a [(String, String)],
    /// Set as [`QUEUE_ENV`].
    pub queue_id: &'a str,
    /// Pipe stdin (QEMU's console input); otherwise it is `/dev/null`.
    pub stdin: bool,
}

/// A started child: the tokio handle and its process group id (= its pid).
#[derive(Debug)]
pub struct Child {
    pub inner: tokio::process::Child,
    pub pgid: i32,
    pub program: String,
}

/// Starts a child as described by `spec`, stdout and stderr piped.
pub fn spawn(spec: &Spec<'_>) -> Result<Child, Error> {
    let program = spec.argv.first().cloned().unwrap_or_default();
    let mut cmd = tokio::process::Command::new(&program);
    cmd.args(spec.argv.iter().skip(1))
        .current_dir(spec.cwd)
        .stdin(if spec.stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        // Only a safety net: groups are stopped explicitly with `stop`.
        .kill_on_drop(true);
    if let Some(base) = spec.base_env {
        cmd.env_clear().envs(base.iter().map(|(k, v)| (k, v)));
    }
    cmd.envs(spec.env.iter().map(|(k, v)| (k, v)))
        .env(QUEUE_ENV, spec.queue_id);
    die_with_worker(&mut cmd);
    let inner = cmd.spawn().map_err(|source| Error::Spawn {
        program: program.clone(),
        source,
    })?;
    let pgid = inner
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .ok_or_else(|| Error::Spawn {
            program: program.clone(),
            source: io::Error::other("the child has no pid"),
        })?;
    Ok(Child {
        inner,
        pgid,
        program,
    })
}

/// Makes the child receive SIGKILL when the worker (the forking thread) dies.
#[expect(
    unsafe_code,
    reason = "pre_exec is the only way to run prctl(PR_SET_PDEATHSIG) in the child"
)]
fn die_with_worker(cmd: &mut tokio::process::Command) {
    let worker = nix::unistd::getpid();
    // SAFETY: the closure runs in the forked child before exec, where only
    // async-signal-safe calls are allowed. It makes two system calls,
    // prctl(2) and getppid(2), and builds errors with `From<Errno>`, which
    // does not allocate; it takes no lock and touches no shared state.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
            // The worker may have died between fork and prctl, in which case
            // the signal will never come: give up instead of running orphaned.
            if nix::unistd::getppid() != worker {
                return Err(Errno::ESRCH.into());
            }
            Ok(())
        });
    }
}

/// Reads the child's stdout and stderr until both close, sending the bytes
/// as pieces that each end at a newline (or hold the rest of a read). The
/// receiver gets `None` once both pipes are closed.
pub fn read_output(child: &mut tokio::process::Child) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel(PIECES_IN_FLIGHT);
    if let Some(stdout) = child.stdout.take() {
        tokio::spawn(pump(stdout, tx.clone()));
    }
    if let Some(stderr) = child.stderr.take() {
        tokio::spawn(pump(stderr, tx));
    }
    rx
}

async fn pump(mut pipe: impl AsyncReadExt + Unpin, tx: mpsc::Sender<Vec<u8>>) {
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let n = match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // One piece per line, so that stdout and stderr interleave in the
        // log at line boundaries when both write whole lines.
        for piece in buf[..n].split_inclusive(|b| *b == b'\n') {
            if tx.send(piece.to_vec()).await.is_err() {
                return;
            }
        }
    }
}

/// Live (not zombie) processes whose process group is `pgid`.
pub fn group_members(pgid: i32) -> Vec<i32> {
    processes()
        .filter(|p| p.pgrp == pgid && p.state != 'Z')
        .map(|p| p.pid)
        .collect()
}

/// Live processes whose environment holds `TESTARENA_QUEUE_ID=<queue_id>`.
pub fn queue_processes(queue_id: &str) -> Vec<i32> {
    let wanted = format!("{QUEUE_ENV}={queue_id}");
    let me = std::process::id();
    processes()
        .filter(|p| p.state != 'Z' && u32::try_from(p.pid).ok() != Some(me))
        .filter(|p| {
            std::fs::read(format!("/proc/{}/environ", p.pid)).is_ok_and(|env| {
                env.split(|b| *b == 0)
                    .any(|entry| entry == wanted.as_bytes())
            })
        })
        .map(|p| p.pid)
        .collect()
}

/// Whether any live member of group `pgid` belongs to `queue_id`: a recorded
/// group id may have been reused by an unrelated process since. Reads
/// `/proc`: call it from the blocking pool.
pub fn group_belongs_to(pgid: i32, queue_id: &str) -> bool {
    let members = group_members(pgid);
    !members.is_empty()
        && queue_processes(queue_id)
            .iter()
            .any(|p| members.contains(p))
}

/// Stops the process group `pgid` and every process of `queue_id` (either
/// may be left out): SIGTERM, up to `grace` for them to exit, then SIGKILL.
/// Returns the pids still alive afterwards (normally none).
///
/// A group alone is first asked whether it still exists (`killpg(pgid, 0)`,
/// a system call): after a step whose child exited, it is gone, and no
/// `/proc` sweep is needed. Sweeps run on the blocking pool.
pub async fn stop(pgid: Option<i32>, queue_id: Option<&str>, grace: Duration) -> Vec<i32> {
    if targets(pgid, queue_id).await.is_empty() {
        return Vec::new();
    }
    signal_all(pgid, &targets(pgid, queue_id).await, Signal::SIGTERM);
    let deadline = tokio::time::Instant::now() + grace;
    while tokio::time::Instant::now() < deadline {
        if targets(pgid, queue_id).await.is_empty() {
            return Vec::new();
        }
        tokio::time::sleep(POLL).await;
    }
    if targets(pgid, queue_id).await.is_empty() {
        return Vec::new();
    }
    let deadline = tokio::time::Instant::now() + KILL_WAIT;
    loop {
        // Again each round: a dying shell may still have forked.
        let left = targets(pgid, queue_id).await;
        if left.is_empty() || tokio::time::Instant::now() >= deadline {
            return left.into_iter().collect();
        }
        signal_all(pgid, &left, Signal::SIGKILL);
        tokio::time::sleep(POLL).await;
    }
}

/// Whether no process is in group `pgid` any more (zombies count as in it
/// until reaped, so a "no" may still be followed by an empty sweep).
fn group_gone(pgid: i32) -> bool {
    killpg(Pid::from_raw(pgid), None) == Err(Errno::ESRCH)
}

/// The live processes of group `pgid` and of `queue_id`.
async fn targets(pgid: Option<i32>, queue_id: Option<&str>) -> BTreeSet<i32> {
    let pgid = pgid.filter(|pgid| !group_gone(*pgid));
    if pgid.is_none() && queue_id.is_none() {
        return BTreeSet::new();
    }
    let queue_id = queue_id.map(str::to_owned);
    let swept = crate::db::blocking(move || {
        let mut pids = BTreeSet::new();
        if let Some(pgid) = pgid {
            pids.extend(group_members(pgid));
        }
        if let Some(queue_id) = &queue_id {
            pids.extend(queue_processes(queue_id));
        }
        Ok(pids)
    });
    match swept.await {
        Ok(pids) => pids,
        Err(e) => {
            // Only a panic or a cancelled runtime gets here.
            tracing::error!(error = %e, "cannot look for processes");
            BTreeSet::new()
        }
    }
}

fn signal_all(pgid: Option<i32>, pids: &BTreeSet<i32>, signal: Signal) {
    // Errors mean the process or group is gone already, which is the goal.
    if let Some(pgid) = pgid {
        let _ = killpg(Pid::from_raw(pgid), signal);
    }
    for pid in pids {
        let _ = kill(Pid::from_raw(*pid), signal);
    }
}

/// One process as `/proc/<pid>/stat` describes it.
#[derive(Debug, Clone, Copy)]
struct ProcStat {
    pid: i32,
    state: char,
    pgrp: i32,
}

fn processes() -> impl Iterator<Item = ProcStat> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            parse_stat(pid, &stat)
        })
}

/// `pid (comm) state ppid pgrp ...`; `comm` may hold spaces and parentheses,
/// so the fields are counted from the last `)`.
fn parse_stat(pid: i32, stat: &str) -> Option<ProcStat> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some(ProcStat { pid, state, pgrp })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    fn spec<'a>(argv: &'a [String], queue_id: &'a str) -> Spec<'a> {
        Spec {
            argv,
            cwd: Path::new("/"),
            base_env: None,
            env: &[],
            queue_id,
            stdin: false,
        }
    }

    #[test]
    fn stat_lines_with_odd_names_parse() {
        let p = parse_stat(7, "7 (a b) c)) S 1 42 42 0 -1").unwrap();
        assert_eq!((p.pid, p.state, p.pgrp), (7, 'S', 42));
        assert!(parse_stat(7, "garbage").is_none());
    }

    #[tokio::test]
    async fn a_child_runs_in_its_own_group_with_the_queue_variable() {
        let a = argv(&["sh", "-c", "echo $TESTARENA_QUEUE_ID; echo err >&2"]);
        let mut child = spawn(&spec(&a, "q-proc-1")).unwrap();
        assert_eq!(child.pgid, child.inner.id().unwrap() as i32);
        let mut rx = read_output(&mut child.inner);
        let mut out = Vec::new();
        while let Some(piece) = rx.recv().await {
            out.extend(piece);
        }
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("q-proc-1\n") && text.contains("err\n"),
            "{text}"
        );
        assert!(child.inner.wait().await.unwrap().success());
    }

    #[tokio::test]
    async fn stop_kills_the_whole_group_and_the_queue_processes() {
        // A group with a background sleeper that ignores SIGTERM, and a
        // process that left the group but keeps the queue variable.
        let a = argv(&[
            "sh",
            "-c",
            "trap '' TERM; sleep 600 & setsid sleep 601 & echo started; wait",
        ]);
        let mut child = spawn(&spec(&a, "q-proc-2")).unwrap();
        let mut rx = read_output(&mut child.inner);
        assert_eq!(rx.recv().await.unwrap(), b"started\n");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while queue_processes("q-proc-2").len() < 3 {
            assert!(std::time::Instant::now() < deadline, "children not seen");
            tokio::time::sleep(POLL).await;
        }
        assert!(group_belongs_to(child.pgid, "q-proc-2"));
        let left = stop(
            Some(child.pgid),
            Some("q-proc-2"),
            Duration::from_millis(300),
        )
        .await;
        assert!(left.is_empty(), "{left:?}");
        let _ = child.inner.wait().await;
        assert!(group_members(child.pgid).is_empty());
        assert!(queue_processes("q-proc-2").is_empty());
    }

    #[tokio::test]
    async fn a_group_whose_child_exited_is_gone_at_once() {
        let a = argv(&["true"]);
        let mut child = spawn(&spec(&a, "q-proc-3")).unwrap();
        assert!(child.inner.wait().await.unwrap().success());
        assert!(group_gone(child.pgid));
        assert!(targets(Some(child.pgid), None).await.is_empty());

        let a = argv(&["sleep", "600"]);
        let mut sleeper = spawn(&spec(&a, "q-proc-3")).unwrap();
        assert!(!group_gone(sleeper.pgid));
        assert_eq!(
            targets(Some(sleeper.pgid), None)
                .await
                .into_iter()
                .collect::<Vec<_>>(),
            vec![sleeper.pgid]
        );
        let left = stop(Some(sleeper.pgid), None, Duration::from_millis(300)).await;
        assert!(left.is_empty(), "{left:?}");
        let _ = sleeper.inner.wait().await;
        assert!(group_gone(sleeper.pgid));
    }

    #[tokio::test]
    async fn a_missing_program_is_a_spawn_error() {
        let a = argv(&["/nonexistent/program"]);
        let err = spawn(&spec(&a, "q")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot start /nonexistent/program: "),
            "{err}"
        );
    }
}
