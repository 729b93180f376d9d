//! Shipping a queue's logs to PostgreSQL (DESIGN section 13): with no
//! filesystem shared with the app, every byte the worker writes under
//! `queues/<id>/` reaches the database's `log_chunks`, keyed by the path
//! relative to that folder (as the app lists files on disk) and the offset.
//!
//! The local file is the buffer. A [`Shipper`] per queue remembers, per
//! path, how much of the local file is stored; every [`SHIP_EVERY`] it
//! reads what each file holds past that and appends it in chunks of at
//! most [`MAX_CHUNK`] through the run's fence, one transaction per batch,
//! in order. A flush that fails (the database restarts, is unreachable)
//! changes nothing locally: the bytes stay on disk and the next flush
//! tries again; after a failure the stored sizes are read back first, so
//! that a batch whose commit was never answered is neither lost nor sent
//! twice. Unsent bytes beyond `[worker] log_buffer_mib` while the
//! database cannot be reached stop the queue ([`ShipState::overflow`]).
//! A fenced flush (the farm ended the run) stops shipping for good.
//!
//! `junit.xml` is not shipped here: it is stored whole at the queue's end.
//! Files only grow (the logs are append-only); a file that shrank is
//! shipped no further.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use testarena_domain::db::{DbConnection, DbPool};
use testarena_domain::store::logs::{self, Chunk, Fence, MAX_CHUNK};
use testarena_domain::store::{StoreError, StoreResult};
use tokio::sync::watch;

use crate::db::{self, Db};

/// How often a running queue's new log bytes are flushed: half the
/// contract's 100 ms, so that a line waits 25 ms on average before the app
/// can serve it (a flush with nothing new costs one directory listing).
pub const SHIP_EVERY: Duration = Duration::from_millis(50);
/// Chunks per transaction.
const BATCH_CHUNKS: usize = 16;
/// The pause between flushes that found the database unreachable.
const RETRY_PAUSE: Duration = Duration::from_millis(500);
const MIB: u64 = 1024 * 1024;

/// What the shipper is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The queue runs: flush through [`Fence::check`].
    Running,
    /// Its end is recorded: flush the rest through [`Fence::check_ended`],
    /// then stop.
    Ended,
    /// Stop at once, shipping nothing more (fenced, or the worker stops).
    Abandon,
}

/// What a running queue's steps learn from its shipper.
#[derive(Debug, Clone, Default)]
pub struct ShipState {
    shared: Arc<Mutex<Shared>>,
}

#[derive(Debug, Default)]
struct Shared {
    overflow: Option<String>,
    fenced: Option<String>,
    /// Set once the last flush of the ended queue stored everything.
    done: bool,
}

impl ShipState {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The queue's `status_reason` once its unsent bytes passed the bound
    /// while the database was unreachable: the queue must end.
    pub fn overflow(&self) -> Option<String> {
        self.lock().overflow.clone()
    }

    /// Why a flush was fenced, if one was.
    pub fn fenced(&self) -> Option<String> {
        self.lock().fenced.clone()
    }
}

/// The shipper of one queue's folder, running in its own task.
#[derive(Debug)]
pub struct Shipper {
    state: ShipState,
    phase: watch::Sender<Phase>,
    task: tokio::task::JoinHandle<()>,
}

impl Shipper {
    /// Starts shipping `dir` (the queue's folder) through `fence`. What
    /// the folder holds now is matched with what the database holds (an
    /// earlier attempt's timeline, copies kept from before), so it is
    /// neither sent twice nor overwritten.
    pub async fn start(db: &Db, dir: PathBuf, fence: Fence, buffer_mib: u64) -> Self {
        let scan_dir = dir.clone();
        let at_start = db::blocking(move || Ok(local_files(&scan_dir)))
            .await
            .unwrap_or_default();
        let state = ShipState::default();
        let (phase, rx) = watch::channel(Phase::Running);
        let flusher = Flusher {
            pool: db.pool().clone(),
            dir,
            fence,
            bound: buffer_mib.saturating_mul(MIB),
            at_start: at_start.into_iter().collect(),
            lens: HashMap::new(),
            initial: None,
            files: HashMap::new(),
            resync: false,
        };
        let task = tokio::spawn(ship(flusher, state.clone(), rx));
        Self { state, phase, task }
    }

    /// What the queue's steps watch.
    pub fn state(&self) -> ShipState {
        self.state.clone()
    }

    /// The queue's end is recorded: ships what is left and waits until
    /// it is stored, for as long as the database is unreachable, or until
    /// `shutdown`. Returns whether everything was stored.
    pub async fn finish(self, mut shutdown: watch::Receiver<bool>) -> bool {
        let _ = self.phase.send(Phase::Ended);
        let mut task = self.task;
        let stopping = async move {
            if shutdown.wait_for(|stop| *stop).await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            _ = &mut task => {}
            () = stopping => {
                let _ = self.phase.send(Phase::Abandon);
                let _ = task.await;
            }
        }
        self.state.lock().done
    }

    /// Stops at once; nothing more is stored.
    pub async fn abandon(self) {
        let _ = self.phase.send(Phase::Abandon);
        let _ = self.task.await;
    }
}

/// The shipper's loop: a flush every [`SHIP_EVERY`] (or [`RETRY_PAUSE`]
/// after a failure), and one more as soon as the end is recorded.
async fn ship(flusher: Flusher, state: ShipState, mut phase: watch::Receiver<Phase>) {
    let mut flusher = Some(flusher);
    let mut pause = SHIP_EVERY;
    loop {
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            changed = phase.changed() => if changed.is_err() { return },
        }
        let now = *phase.borrow();
        if now == Phase::Abandon {
            return;
        }
        let Some(mut f) = flusher.take() else { return };
        let ended = now == Phase::Ended;
        let (f, result) = match db::blocking(move || {
            let result = f.flush(ended);
            Ok((f, result))
        })
        .await
        {
            Ok(done) => done,
            Err(e) => {
                tracing::error!(error = %e, "log shipper failed");
                return;
            }
        };
        match result {
            Ok(()) => {
                pause = SHIP_EVERY;
                if ended {
                    state.lock().done = true;
                    return;
                }
            }
            Err(StoreError::Fenced(why)) => {
                tracing::warn!(reason = %why, "fenced: the farm ended this run; its logs are not stored");
                state.lock().fenced = Some(why);
                return;
            }
            Err(e) => {
                let unsent = f.unsent();
                if unsent > f.bound && !ended {
                    let mut shared = state.lock();
                    if shared.overflow.is_none() {
                        let reason = format!(
                            "log buffer full: {} MiB not sent while the database was unreachable",
                            unsent / MIB
                        );
                        tracing::error!(error = %e, "{reason}");
                        shared.overflow = Some(reason);
                    }
                } else {
                    tracing::debug!(error = %e, unsent, "log flush failed; trying again");
                }
                pause = RETRY_PAUSE;
            }
        }
        flusher = Some(f);
    }
}

/// One file's shipping state.
#[derive(Debug, Clone, Copy)]
struct Shipped {
    /// Where the local file's byte 0 is in the stored file.
    base: u64,
    /// Bytes of the local file stored.
    done: u64,
}

/// The blocking side of a shipper: reads the files and stores chunks.
struct Flusher {
    pool: DbPool,
    dir: PathBuf,
    fence: Fence,
    bound: u64,
    /// Local sizes when the shipper started.
    at_start: HashMap<String, u64>,
    /// Local sizes at the last look.
    lens: HashMap<String, u64>,
    /// What the database held when the shipper first reached it.
    initial: Option<HashMap<String, u64>>,
    files: HashMap<String, Shipped>,
    /// Whether `files` must be read back from the database (after a failed
    /// flush, whose commit may or may not have happened).
    resync: bool,
}

impl Flusher {
    /// Bytes written locally and not stored yet.
    fn unsent(&self) -> u64 {
        self.lens
            .iter()
            .map(|(path, len)| {
                let done = match self.files.get(path) {
                    Some(f) => f.done,
                    None => self.at_start.get(path).copied().unwrap_or(0),
                };
                len.saturating_sub(done)
            })
            .sum()
    }

    /// Stores everything the files hold past what is stored.
    fn flush(&mut self, ended: bool) -> StoreResult<()> {
        self.lens = local_files(&self.dir).into_iter().collect();
        let result = self.try_flush(ended);
        if result.is_err() {
            self.resync = true;
        }
        result
    }

    fn try_flush(&mut self, ended: bool) -> StoreResult<()> {
        let mut conn = self.pool.get()?;
        let initial = match &mut self.initial {
            Some(initial) => initial,
            empty @ None => empty.insert(stored(&mut conn, &self.fence.queue_id)?),
        };
        for path in self.lens.keys() {
            if !self.files.contains_key(path) {
                // The local copy at the start is the tail of what is
                // stored (kept from before), or holds more (bytes never
                // sent), or nothing (a new file, an earlier attempt's
                // timeline stored by another host).
                let size = initial.get(path).copied().unwrap_or(0);
                let done = self.at_start.get(path).copied().unwrap_or(0).min(size);
                let file = Shipped {
                    base: size - done,
                    done,
                };
                self.files.insert(path.clone(), file);
            }
        }
        if self.resync {
            let now = stored(&mut conn, &self.fence.queue_id)?;
            for (path, file) in &mut self.files {
                let size = now.get(path).copied().unwrap_or(0);
                file.done = size.saturating_sub(file.base);
            }
            self.resync = false;
        }
        loop {
            let chunks = self.next_batch();
            if chunks.is_empty() {
                return Ok(());
            }
            if ended {
                logs::append_ended_chunks(&mut conn, &self.fence, &chunks)?;
            } else {
                match logs::append_chunks(&mut conn, &self.fence, &chunks) {
                    // The run's own end may have been stored meanwhile:
                    // only a run the farm ended is fenced.
                    Err(StoreError::Fenced(_)) => {
                        logs::append_ended_chunks(&mut conn, &self.fence, &chunks)?;
                    }
                    other => other?,
                }
            }
            for c in &chunks {
                if let Some(f) = self.files.get_mut(&c.path) {
                    f.done += c.data.len() as u64;
                }
            }
        }
    }

    /// The next chunks to store: up to [`BATCH_CHUNKS`], in order per file.
    fn next_batch(&self) -> Vec<Chunk> {
        let mut chunks = Vec::new();
        let mut paths: Vec<&String> = self.files.keys().collect();
        paths.sort();
        for path in paths {
            let f = self.files[path];
            let len = self.lens.get(path).copied().unwrap_or(0);
            let mut at = f.done;
            while at < len && chunks.len() < BATCH_CHUNKS {
                let Some(data) = read_at(&self.dir.join(path), at, MAX_CHUNK) else {
                    break;
                };
                if data.is_empty() {
                    break;
                }
                chunks.push(Chunk {
                    path: path.clone(),
                    start: i64::try_from(f.base + at).unwrap_or(i64::MAX),
                    data: data.clone(),
                });
                at += data.len() as u64;
            }
            if chunks.len() >= BATCH_CHUNKS {
                break;
            }
        }
        chunks
    }
}

/// The stored size of each of a queue's files.
fn stored(conn: &mut DbConnection, queue_id: &str) -> StoreResult<HashMap<String, u64>> {
    Ok(logs::stored_files(conn, queue_id)?
        .into_iter()
        .map(|f| (f.path, u64::try_from(f.size).unwrap_or(0)))
        .collect())
}

/// Up to `max` bytes of `path` from `offset`.
fn read_at(path: &Path, offset: u64, max: usize) -> Option<Vec<u8>> {
    let mut file = File::open(path).ok()?;
    file.seek(SeekFrom::Start(offset)).ok()?;
    let mut data = Vec::with_capacity(max);
    file.take(max as u64).read_to_end(&mut data).ok()?;
    Some(data)
}

/// Every regular file under `dir` but `junit.xml` (stored whole at the
/// end), as paths relative to it, with its size: what the app would list.
fn local_files(dir: &Path) -> Vec<(String, u64)> {
    testarena_domain::paths::queue_files(dir)
        .into_iter()
        .filter(|(rel, _)| !is_junit(rel))
        .map(|(rel, meta)| (rel, meta.len()))
        .collect()
}

/// `junit.xml`, or an earlier attempt's (moved with the attempt's logs).
fn is_junit(rel: &str) -> bool {
    rel == "junit.xml" || (rel.starts_with("attempts/") && rel.ends_with("/junit.xml"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_folder_is_listed_as_the_app_lists_it_without_junit() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("tasks/q.1")).unwrap();
        std::fs::create_dir_all(d.join("attempts/1")).unwrap();
        std::fs::write(d.join("queue.log"), "abc").unwrap();
        std::fs::write(d.join("junit.xml"), "<x/>").unwrap();
        std::fs::write(d.join("attempts/1/junit.xml"), "<x/>").unwrap();
        std::fs::write(d.join("attempts/1/build.log"), "b").unwrap();
        std::fs::write(d.join("tasks/q.1/t.log"), "tt").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.join("tasks/q.1/link.log")).unwrap();
        let mut files = local_files(d);
        files.sort();
        assert_eq!(
            files,
            vec![
                ("attempts/1/build.log".to_owned(), 1),
                ("queue.log".to_owned(), 3),
                ("tasks/q.1/t.log".to_owned(), 2),
            ]
        );
    }
}
