//! The follow side of a queue's logs: Server-Sent Events that follow the
//! files and the database while the queue runs.
//!
//! Following is shared: one task per followed queue (per server thread)
//! looks at the queue's `*.log` files and its row and publishes what it
//! saw to every stream of that queue through a `watch` channel; each
//! stream then reads only the bytes it has not sent yet. So a hundred
//! clients on one queue cost one look a tick, not a hundred. On SQLite
//! the follower looks every [`POLL`]; on PostgreSQL it looks when the
//! app's `LISTEN` ([`super::hub`]) hears of the queue (`queue:<id>`,
//! `log:<id>`), and every [`SLOW_POLL`] in case a notification was lost.
//! A stream reads at most [`MAX_BATCH`] before it sends. Each `log` event
//! carries `next_offset`, the byte offset after its bytes, so a client
//! resumes exactly even when a log is not UTF-8.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::web::Bytes;
use testarena_domain::api::{LogChunk, Queue};
use tokio::sync::{mpsc, watch};

use super::hub::{Wake, Woken};
use super::source::{JUNIT, LogSource, SETTLE};
use super::tail::Tails;
use crate::error::ApiError;
use crate::queues;
use crate::state::{AppState, blocking};

/// The most bytes one SSE `log` event carries.
const MAX_EVENT: usize = 64 * 1024;
/// The most bytes a stream reads from the files before sending them.
const MAX_BATCH: u64 = 4 * MAX_EVENT as u64;
/// How often the follower of a queue looks at its files and the database
/// (SQLite).
const POLL: Duration = Duration::from_millis(50);
/// How often it looks without a notification (PostgreSQL: the fallback).
const SLOW_POLL: Duration = Duration::from_secs(1);
/// Comment lines keep proxies from closing an idle stream.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// Opens one client's stream of `first` (the queue as it is now): the
/// events as bytes, `only` one file from `start` when given. The stream
/// ends after `end`, or when the client goes away.
pub async fn open(
    state: Arc<AppState>,
    followers: Arc<Followers>,
    first: Queue,
    only: Option<String>,
    start: u64,
) -> Result<impl futures_util::Stream<Item = Result<Bytes, actix_web::Error>>, ApiError> {
    let snapshots = followers.subscribe(&state, &first).await?;
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    state.metrics.sse_opened();
    actix_web::rt::spawn(async move {
        let stream = Stream {
            source: LogSource::of(&state, &first.id),
            only,
            start,
            tx,
        };
        let _ = stream.run(snapshots, first).await;
        state.metrics.sse_closed();
    });
    Ok(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, actix_web::Error>(b), rx))
    }))
}

/// One event, written once into its own buffer.
fn sse(event: &str, data: &impl serde::Serialize) -> Bytes {
    let mut buf = Vec::with_capacity(256);
    buf.extend_from_slice(b"event: ");
    buf.extend_from_slice(event.as_bytes());
    buf.extend_from_slice(b"\ndata: ");
    if serde_json::to_writer(&mut buf, data).is_err() {
        buf.extend_from_slice(b"null");
    }
    buf.extend_from_slice(b"\n\n");
    Bytes::from(buf)
}

/// What the follower of a queue saw at one look.
#[derive(Debug, Clone, PartialEq)]
struct Snapshot {
    /// The queue as `GET /api/v1/queues/{id}` shows it; `None` once deleted.
    queue: Option<Queue>,
    /// The queue's files and their sizes, by path.
    files: Vec<(String, u64)>,
    /// The queue is final and its files will not grow any more.
    complete: bool,
    /// The newest bytes of the stored logs (PostgreSQL; empty on SQLite).
    tails: Tails,
}

/// Whether `files` of `queue` (from `source`) are complete: the queue is
/// final and, for stored logs, `junit.xml` is there, the queue never
/// started, or the follower saw it final [`SETTLE`] ago (`final_since`).
fn complete(
    source: &LogSource,
    queue: &Queue,
    files: &[(String, u64)],
    final_since: Option<Instant>,
) -> bool {
    if !queue.is_final() {
        return false;
    }
    !source.is_db()
        || queue.started_at.is_none()
        || files.iter().any(|(path, _)| path == JUNIT)
        || final_since.is_some_and(|at| at.elapsed() >= SETTLE)
}

type Snapshots = watch::Receiver<Arc<Snapshot>>;
type Publisher = Arc<watch::Sender<Arc<Snapshot>>>;

/// The followers of this server thread: one per queue that has streams.
#[derive(Debug, Default)]
pub struct Followers {
    queues: Mutex<HashMap<String, Publisher>>,
}

impl Followers {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, Publisher>>, ApiError> {
        self.queues
            .lock()
            .map_err(|_| ApiError::internal("followers lock poisoned"))
    }

    /// The snapshots of `queue`, from its follower, which is started when
    /// the queue has none. The first snapshot is there at once.
    async fn subscribe(
        self: &Arc<Self>,
        state: &Arc<AppState>,
        queue: &Queue,
    ) -> Result<Snapshots, ApiError> {
        if let Some(publisher) = self.lock()?.get(&queue.id) {
            return Ok(publisher.subscribe());
        }
        let source = LogSource::of(state, &queue.id);
        let (files, tails) = {
            let source = source.clone();
            blocking(move || look_at_files(&source, &Tails::default())).await?
        };
        let first = Snapshot {
            complete: complete(&source, queue, &files, None),
            queue: Some(queue.clone()),
            files,
            tails,
        };
        let wake = state.hub.subscribe(&queue.id);
        let mut queues = self.lock()?;
        if let Some(publisher) = queues.get(&queue.id) {
            return Ok(publisher.subscribe());
        }
        let (publisher, snapshots) = watch::channel(Arc::new(first));
        let publisher = Arc::new(publisher);
        queues.insert(queue.id.clone(), Arc::clone(&publisher));
        let (followers, state, id) = (self.clone(), Arc::clone(state), queue.id.clone());
        actix_web::rt::spawn(async move {
            follow_queue(&followers, &state, &id, &publisher, wake).await;
        });
        Ok(snapshots)
    }

    /// Forgets `publisher` when it is the one registered for `id` and, unless
    /// `always`, nobody listens to it any more. Whether it was forgotten.
    fn retire(&self, id: &str, publisher: &Publisher, always: bool) -> bool {
        let Ok(mut queues) = self.queues.lock() else {
            return true;
        };
        if !always && publisher.receiver_count() > 0 {
            return false;
        }
        if queues.get(id).is_some_and(|p| Arc::ptr_eq(p, publisher)) {
            queues.remove(id);
        }
        true
    }
}

/// Waits for the next look: a wake-up of the queue or [`SLOW_POLL`] with
/// a listener, [`POLL`] without (a wake-up that came during the last look
/// counts: `changed` sees it). True when the queue's row must be read
/// again too: anything but new log chunks alone since `seen`.
async fn next_look(wake: &mut Option<Wake>, seen: &mut Woken) -> bool {
    let Some(w) = wake else {
        tokio::time::sleep(POLL).await;
        return true;
    };
    match tokio::time::timeout(SLOW_POLL, w.changed()).await {
        Ok(Ok(())) => {
            let now = *w.borrow_and_update();
            let row = now.row != seen.row;
            *seen = now;
            row
        }
        Ok(Err(_)) => {
            // The hub is gone (the app stops): poll from now on.
            *wake = None;
            true
        }
        Err(_) => true,
    }
}

/// The follower of one queue: looks at its row and its files when woken
/// (or every poll) and publishes each change, until the queue's files are
/// complete or it is deleted (that last look is published too) or no
/// stream is left.
async fn follow_queue(
    followers: &Followers,
    state: &AppState,
    id: &str,
    publisher: &Publisher,
    mut wake: Option<Wake>,
) {
    let source = LogSource::of(state, id);
    let mut final_since = None;
    let mut tails = publisher.borrow().tails.clone();
    let mut known = publisher.borrow().queue.clone();
    let mut seen = wake.as_ref().map(|w| *w.borrow()).unwrap_or_default();
    loop {
        let row_changed = next_look(&mut wake, &mut seen).await;
        if followers.retire(id, publisher, false) {
            return;
        }
        // The row first: files seen after a final status are complete.
        let look =
            {
                let (id, source, tails) = (id.to_owned(), source.clone(), tails.clone());
                let queue = async {
                    if !row_changed && known.is_some() {
                        // New chunks only: the row is as it was.
                        return Ok(known.clone());
                    }
                    match queues::load(state, &id).await {
                        Ok(queue) => Ok(Some(queue)),
                        Err(ApiError::NotFound(_)) => Ok(None),
                        Err(e) => Err(e),
                    }
                };
                match queue.await {
                    Ok(queue) => blocking(move || look_at_files(&source, &tails)).await.map(
                        |(files, tails)| Snapshot {
                            queue,
                            files,
                            complete: false,
                            tails,
                        },
                    ),
                    Err(e) => Err(e),
                }
            };
        let mut snapshot = match look {
            Ok(snapshot) => snapshot,
            Err(e) => {
                // A busy database: the next look will do.
                tracing::warn!(queue.id = %id, error = %e, "cannot follow the queue");
                continue;
            }
        };
        if let Some(queue) = &snapshot.queue {
            if queue.is_final() {
                final_since.get_or_insert_with(Instant::now);
            }
            snapshot.complete = complete(&source, queue, &snapshot.files, final_since);
        }
        tails = snapshot.tails.clone();
        known = snapshot.queue.clone();
        let done = snapshot.queue.is_none() || snapshot.complete;
        publisher.send_if_modified(|current| {
            let changed = **current != snapshot;
            if changed {
                *current = Arc::new(snapshot);
            }
            changed
        });
        if done {
            followers.retire(id, publisher, true);
            return;
        }
    }
}

/// The queue's files and their sizes, and, for stored logs, the windows
/// grown by what was added since `tails` (blocking).
fn look_at_files(
    source: &LogSource,
    tails: &Tails,
) -> Result<(Vec<(String, u64)>, Tails), ApiError> {
    let files = source.sizes()?;
    let tails = if source.is_db() {
        tails.grown(source, &files)
    } else {
        Tails::default()
    };
    Ok((files, tails))
}

/// Per-file read positions of one stream.
#[derive(Debug)]
struct Cursor {
    path: String,
    offset: u64,
}

/// Reads at most `limit` bytes of a file from an offset (path, offset,
/// limit); `None` when it cannot now.
type ReadAt<'a> = dyn Fn(&str, u64, u64) -> Option<Vec<u8>> + 'a;

/// What is new in the files since the last call: complete lines only,
/// unless `all` (the queue is final), in chunks of at most [`MAX_EVENT`]
/// bytes and at most [`MAX_BATCH`] bytes in all, each read by `read_at`
/// (path, offset, limit; `None`: cannot be read now). The flag says
/// whether more is ready to read at once.
fn new_chunks(
    read_at: &ReadAt<'_>,
    files: &[(String, u64)],
    cursors: &mut Vec<Cursor>,
    only: Option<&str>,
    start: u64,
    all: bool,
) -> (Vec<LogChunk>, bool) {
    let mut chunks = Vec::new();
    let mut read = 0;
    for (path, size) in files {
        if only.is_some_and(|o| o != path) || !path.ends_with(".log") {
            continue;
        }
        let cursor = match cursors.iter().position(|c| &c.path == path) {
            Some(i) => &mut cursors[i],
            None => {
                cursors.push(Cursor {
                    path: path.clone(),
                    offset: if only.is_some() { start } else { 0 },
                });
                let last = cursors.len() - 1;
                &mut cursors[last]
            }
        };
        // Shorter than what was sent: a new attempt of the queue started
        // the file again (the earlier one moved to `attempts/<n>/`).
        if *size < cursor.offset {
            cursor.offset = 0;
        }
        while cursor.offset < *size {
            if read >= MAX_BATCH {
                return (chunks, true);
            }
            let Some(bytes) = read_at(path, cursor.offset, MAX_EVENT as u64) else {
                break;
            };
            let take = match bytes.iter().rposition(|&b| b == b'\n') {
                Some(i) => i + 1,
                None if all || bytes.len() == MAX_EVENT => bytes.len(),
                None => 0,
            };
            if take == 0 {
                break;
            }
            chunks.push(LogChunk {
                path: path.clone(),
                offset: cursor.offset,
                next_offset: cursor.offset + take as u64,
                text: String::from_utf8_lossy(&bytes[..take]).into_owned(),
            });
            cursor.offset += take as u64;
            read += take as u64;
        }
    }
    (chunks, false)
}

/// The client went away.
#[derive(Debug)]
struct Gone;

/// One client's stream: its cursors over the files and its channel.
struct Stream {
    source: LogSource,
    only: Option<String>,
    start: u64,
    tx: mpsc::Sender<Bytes>,
}

impl Stream {
    /// True when every byte this stream has still to send of `snapshot`'s
    /// logs is in the follower's windows.
    fn in_tails(&self, snapshot: &Snapshot, cursors: &[Cursor]) -> bool {
        self.source.is_db()
            && snapshot.files.iter().all(|(path, size)| {
                if !path.ends_with(".log") || self.only.as_ref().is_some_and(|o| o != path) {
                    return true;
                }
                let offset = match cursors.iter().find(|c| &c.path == path) {
                    Some(c) => c.offset,
                    None if self.only.is_some() => self.start,
                    None => 0,
                };
                offset <= *size && snapshot.tails.covers(path, offset, *size)
            })
    }

    async fn send(&self, bytes: Bytes) -> Result<(), Gone> {
        self.tx.send(bytes).await.map_err(|_| Gone)
    }

    /// Sends `first`, then for each snapshot the new lines of the files and
    /// the queue when it changed, then `end` once the queue is final and
    /// every file was sent to its end.
    async fn run(self, mut snapshots: Snapshots, first: Queue) -> Result<(), Gone> {
        self.send(sse("status", &first)).await?;
        let mut last = first;
        let mut cursors = Vec::new();
        let mut follower_gone = false;
        loop {
            let snapshot = Arc::clone(&snapshots.borrow_and_update());
            let Some(current) = &snapshot.queue else {
                let deleted = serde_json::json!({"status": "deleted"});
                return self.send(sse("end", &deleted)).await;
            };
            let is_final = snapshot.complete;
            loop {
                let (chunks, more) = if self.in_tails(&snapshot, &cursors) {
                    // Caught up: the follower's window has it, no database.
                    let read = |path: &str, at, limit| snapshot.tails.read(path, at, limit);
                    let only = self.only.as_deref();
                    new_chunks(
                        &read,
                        &snapshot.files,
                        &mut cursors,
                        only,
                        self.start,
                        is_final,
                    )
                } else {
                    let (source, files, only, start) = (
                        self.source.clone(),
                        Arc::clone(&snapshot),
                        self.only.clone(),
                        self.start,
                    );
                    let mut c = std::mem::take(&mut cursors);
                    let read = blocking(move || {
                        let read = |path: &str, at, limit| {
                            files
                                .tails
                                .read(path, at, limit)
                                .or_else(|| source.read(path, at, limit).ok())
                        };
                        let only = only.as_deref();
                        let (chunks, more) =
                            new_chunks(&read, &files.files, &mut c, only, start, is_final);
                        Ok((chunks, more, c))
                    })
                    .await;
                    let Ok((chunks, more, c)) = read else {
                        return Err(Gone);
                    };
                    cursors = c;
                    (chunks, more)
                };
                for chunk in &chunks {
                    self.send(sse("log", chunk)).await?;
                }
                if !more {
                    break;
                }
            }
            if *current != last {
                self.send(sse("status", current)).await?;
                last = current.clone();
            }
            if is_final {
                return self.send(sse("end", &last)).await;
            }
            if follower_gone {
                // Cannot happen: a follower stops at the end or when no
                // stream listens. Close rather than hang.
                return Ok(());
            }
            match tokio::time::timeout(KEEPALIVE, snapshots.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => follower_gone = true,
                Err(_) => self.send(Bytes::from_static(b": keepalive\n\n")).await?,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_whole_lines_until_the_end() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.log"), "one\ntwo\npart").unwrap();
        let source = LogSource::Files(dir.path().to_owned());
        let files = source.sizes().unwrap();
        let read = |path: &str, at, limit| source.read(path, at, limit).ok();
        assert_eq!(files, [("a.log".to_owned(), 12)]);
        let mut cursors = Vec::new();
        let (chunks, more) = new_chunks(&read, &files, &mut cursors, None, 0, false);
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].text, "one\ntwo\n");
        assert!(!more);
        assert!(
            new_chunks(&read, &files, &mut cursors, None, 0, false)
                .0
                .is_empty()
        );
        let (chunks, _) = new_chunks(&read, &files, &mut cursors, None, 0, true);
        assert_eq!((chunks[0].offset, chunks[0].text.as_str()), (8, "part"));
    }

    #[test]
    fn a_large_backlog_is_read_a_batch_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let line = "x".repeat(1023) + "\n";
        let size = 3 * MAX_BATCH as usize + 5;
        std::fs::write(dir.path().join("big.log"), line.repeat(size / 1024 + 1)).unwrap();
        let source = LogSource::Files(dir.path().to_owned());
        let files = source.sizes().unwrap();
        let read = |path: &str, at, limit| source.read(path, at, limit).ok();
        let mut cursors = Vec::new();
        let (mut batches, mut total) = (0, 0);
        loop {
            let (chunks, more) = new_chunks(&read, &files, &mut cursors, None, 0, true);
            let bytes: usize = chunks.iter().map(|c| c.text.len()).sum();
            assert!(bytes as u64 <= MAX_BATCH, "{bytes}");
            assert!(chunks.iter().all(|c| c.text.len() <= MAX_EVENT));
            total += bytes;
            batches += 1;
            if !more {
                break;
            }
        }
        assert_eq!(total as u64, files[0].1);
        assert!(batches >= 4, "{batches}");
    }
}
