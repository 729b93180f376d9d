//! A queue's files: the listing, ranged reads, and Server-Sent Events that
//! follow the files and the database while the queue runs.
//!
//! Following is shared: one task per followed queue (per server thread)
//! looks at the queue's `*.log` files and its row every [`POLL`] and
//! publishes what it saw to every stream of that queue through a `watch`
//! channel; each stream then reads only the bytes it has not sent yet. So
//! a hundred clients on one queue cost one directory walk and one query a
//! tick, not a hundred. Reads are bounded: a ranged read goes out in pieces
//! of [`READ_PIECE`] and a stream reads at most [`MAX_BATCH`] before it
//! sends, so serving a log of any size takes little memory.
//!
//! Every path a client names is confined to `queues/<id>/`: its components
//! are checked before it touches the disk, and the resolved file must still
//! lie inside the queue's folder (no `..`, no symlink escape).

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::body::SizedStream;
use actix_web::web::Bytes;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use testarena_domain::api::{LogChunk, LogFile, Queue};
use testarena_domain::store;
use tokio::sync::{mpsc, watch};

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::openapi::{Authed, BadRequestError, IdParam, NotFoundError, ValidationFailedError};
use crate::routes::queues::{checked_id, load_queue};
use crate::state::{AppState, blocking};

/// The most bytes one ranged read returns.
pub const MAX_READ: u64 = 4 * 1024 * 1024;
/// The most bytes one SSE `log` event carries.
const MAX_EVENT: usize = 64 * 1024;
/// The most bytes a stream reads from the files before sending them.
const MAX_BATCH: u64 = 4 * MAX_EVENT as u64;
/// The bytes of a ranged read held in memory at once.
const READ_PIECE: u64 = 64 * 1024;
/// How often the follower of a queue looks at its files and the database.
const POLL: Duration = Duration::from_millis(50);
/// Comment lines keep proxies from closing an idle stream.
const KEEPALIVE: Duration = Duration::from_secs(15);

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::Data::new(Followers::default()))
        .service(web::resource("/api/v1/queues/{id}/logs").route(web::get().to(list)))
        .service(web::resource("/api/v1/queues/{id}/logs/{path:.*}").route(web::get().to(read)))
        .service(web::resource("/api/v1/queues/{id}/events").route(web::get().to(events)));
}

type Data = web::Data<AppState>;

/// Checks a relative log path: `/`-separated plain names, no `.`/`..`.
fn checked_path(path: &str) -> Result<&str, ApiError> {
    let ok = !path.is_empty()
        && path.len() <= 512
        && path.split('/').all(|c| {
            !c.is_empty()
                && c != "."
                && c != ".."
                && c.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "._-".contains(ch))
        });
    if ok {
        Ok(path)
    } else {
        Err(ApiError::NotFound(format!("no log {path:?}")))
    }
}

/// Resolves `path` inside `dir`, refusing anything that leaves it.
fn confined(dir: &Path, path: &str) -> Result<PathBuf, ApiError> {
    let not_found = || ApiError::NotFound(format!("no log {path:?}"));
    let root = dir.canonicalize().map_err(|_| not_found())?;
    let file = root
        .join(checked_path(path)?)
        .canonicalize()
        .map_err(|_| not_found())?;
    if !file.starts_with(&root) || !file.is_file() {
        return Err(not_found());
    }
    Ok(file)
}

/// Every regular file under `dir`, as paths relative to it, sorted.
fn walk(dir: &Path) -> Vec<(String, std::fs::Metadata)> {
    fn visit(root: &Path, dir: &Path, out: &mut Vec<(String, std::fs::Metadata)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            let path = entry.path();
            if meta.is_dir() {
                visit(root, &path, out);
            } else if meta.is_file()
                && let Ok(rel) = path.strip_prefix(root)
                && let Some(rel) = rel.to_str()
            {
                out.push((rel.to_owned(), meta));
            }
        }
    }
    let mut out = Vec::new();
    visit(dir, dir, &mut out);
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// `GET /api/v1/queues/{id}/logs`.
#[utoipa::path(
    get,
    path = "/api/v1/queues/{id}/logs",
    operation_id = "list_logs",
    tag = "logs",
    summary = "The queue's files",
    description = "Every file under the queue's folder (logs, rendered HTML, `junit.xml`), by path.",
    params(IdParam),
    responses(
        (status = 200, description = "The files, sorted by path", body = Vec<LogFile>),
        (status = 404, description = "No such queue", body = NotFoundError),
        Authed,
    )
)]
async fn list(
    state: Data,
    _user: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let queue = load_queue(&state, &id).await?;
    let dir = state.home.queue_dir(&queue.id);
    let files = blocking(move || {
        Ok(walk(&dir)
            .into_iter()
            .map(|(path, meta)| LogFile {
                path,
                size: meta.len(),
                modified_at: meta
                    .modified()
                    .map(chrono::DateTime::<chrono::Utc>::from)
                    .unwrap_or_default(),
            })
            .collect::<Vec<_>>())
    })
    .await?;
    Ok(HttpResponse::Ok().json(files))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct RangeQuery {
    /// First byte to return, default 0; past the end: an empty answer.
    offset: Option<u64>,
    /// Most bytes to return, default and at most 4 MiB.
    #[param(minimum = 1, maximum = 4194304)]
    limit: Option<u64>,
}

/// `GET /api/v1/queues/{id}/logs/{path}`.
#[utoipa::path(
    get,
    path = "/api/v1/queues/{id}/logs/{path}",
    operation_id = "read_log",
    tag = "logs",
    summary = "Read a file of the queue, from an offset",
    description = "The bytes as they are on disk (output that is not UTF-8 included). Follow a \
        running queue's log by asking again from `offset` + the length received until \
        `X-Log-Complete` is `true` and the offset reaches `X-Log-Size`.",
    params(
        IdParam,
        ("path" = String, Path, description = "Relative to the queue's folder, e.g. `tasks/<task id>/<test>.log`: `/`-separated names of `[A-Za-z0-9._-]`, no `.` or `..`"),
        RangeQuery,
    ),
    responses(
        (status = 200, description = "The bytes from `offset`", content_type = "text/plain", body = String,
            headers(
                ("X-Log-Size" = u64, description = "The file's size now, in bytes"),
                ("X-Log-Complete" = bool, description = "`true` once the queue has ended: the file will not grow"),
            )),
        (status = 400, description = "An unknown query parameter, a value that is not a number, or a path that cannot be decoded", body = BadRequestError),
        (status = 404, description = "No such queue or file, or a path that leaves the queue's folder", body = NotFoundError),
        (status = 422, description = "`limit` out of range", body = ValidationFailedError),
        Authed,
    )
)]
async fn read(
    state: Data,
    _user: AuthUser,
    path: web::Path<(String, String)>,
    query: web::Query<RangeQuery>,
) -> Result<HttpResponse, ApiError> {
    let (id, rel) = path.into_inner();
    checked_path(&rel)?;
    let queue = load_queue(&state, &id).await?;
    let offset = query.offset.unwrap_or(0);
    let limit = query.limit.unwrap_or(MAX_READ);
    if limit == 0 || limit > MAX_READ {
        return Err(ApiError::validation(
            "limit",
            format!("must be between 1 and {MAX_READ}"),
        ));
    }
    let dir = state.home.queue_dir(&queue.id);
    let (file, size) = blocking(move || {
        let path = confined(&dir, &rel)?;
        let io = |e: std::io::Error| ApiError::internal(format!("{}: {e}", path.display()));
        let file = File::open(&path).map_err(io)?;
        let size = file.metadata().map_err(io)?.len();
        Ok((file, size))
    })
    .await?;
    let len = limit.min(size.saturating_sub(offset));
    let content_type = if queue_file_is_html(&id) {
        "text/html; charset=utf-8"
    } else {
        "text/plain; charset=utf-8"
    };
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("X-Log-Size", size.to_string()))
        .insert_header(("X-Log-Complete", queue.is_final().to_string()))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body(SizedStream::new(len, pieces(file, offset, len))))
}

/// `len` bytes of `file` from `offset`, read [`READ_PIECE`] at a time on
/// the blocking pool as the client takes them.
fn pieces(
    file: File,
    offset: u64,
    len: u64,
) -> impl futures_util::Stream<Item = Result<Bytes, actix_web::Error>> {
    let state = (Arc::new(file), offset, offset + len);
    futures_util::stream::try_unfold(state, |(file, at, end)| async move {
        if at >= end {
            return Ok(None);
        }
        let want = (end - at).min(READ_PIECE) as usize;
        let f = Arc::clone(&file);
        let piece = blocking(move || {
            let mut buf = vec![0; want];
            let mut got = 0;
            while got < want {
                match f.read_at(&mut buf[got..], at + got as u64) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(ApiError::internal(e)),
                }
            }
            buf.truncate(got);
            Ok(buf)
        })
        .await?;
        if piece.is_empty() {
            // Logs only grow: a file that shrank under us cannot fill the
            // announced length, so the connection is cut.
            return Err(ApiError::internal("the file shrank while it was read").into());
        }
        let next = at + piece.len() as u64;
        Ok(Some((Bytes::from(piece), (file, next, end))))
    })
}

fn queue_file_is_html(_id: &str) -> bool {
    false
}

/// Reads at most `limit` bytes from `offset`; returns them and the file size.
fn read_range(file: &Path, offset: u64, limit: u64) -> std::io::Result<(Vec<u8>, u64)> {
    let mut f = std::fs::File::open(file)?;
    let size = f.metadata()?.len();
    if offset >= size {
        return Ok((Vec::new(), size));
    }
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::with_capacity(limit.min(size - offset) as usize);
    f.take(limit).read_to_end(&mut buf)?;
    Ok((buf, size))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct EventsQuery {
    /// Follow only this file.
    path: Option<String>,
    /// Start that file at this byte offset (default 0).
    offset: Option<u64>,
}

/// `GET /api/v1/queues/{id}/events`: `status` (the queue) on every change,
/// `log` (`{"path","offset","text"}`) as complete lines arrive, and `end`
/// once the queue is final and every file has been sent to its end.
#[utoipa::path(
    get,
    path = "/api/v1/queues/{id}/events",
    operation_id = "queue_events",
    tag = "logs",
    summary = "Follow a queue live (Server-Sent Events)",
    description = "Events, each `data` one line of JSON: `status` (a `Queue`) first and on every \
        change; `log` (a `LogChunk`: complete lines of a `.log` file as they are written); `end` \
        (the final `Queue`, or `{\"status\": \"deleted\"}` when the queue was deleted) once \
        the queue has ended and every file was sent to its end, after which the stream closes. \
        Comment lines keep an idle stream open. The stream stays open while the queue runs.",
    params(IdParam, EventsQuery),
    responses(
        (status = 200, description = "The event stream", content_type = "text/event-stream", body = String),
        (status = 400, description = "An unknown query parameter, or an `offset` that is not a number", body = BadRequestError),
        (status = 404, description = "No such queue, or a bad `path`", body = NotFoundError),
        Authed,
    )
)]
async fn events(
    state: Data,
    followers: web::Data<Followers>,
    _user: AuthUser,
    id: web::Path<String>,
    query: web::Query<EventsQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = checked_id(&id)?.to_owned();
    let first = load_queue(&state, &id).await?;
    let only = query
        .path
        .as_deref()
        .map(checked_path)
        .transpose()?
        .map(str::to_owned);
    let start = query.offset.unwrap_or(0);
    let state = state.into_inner();
    let snapshots = followers.into_inner().subscribe(&state, &first).await?;
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    state.metrics.sse_opened();
    actix_web::rt::spawn(async move {
        let stream = Stream {
            dir: state.home.queue_dir(&first.id),
            only,
            start,
            tx,
        };
        let _ = stream.run(snapshots, first).await;
        state.metrics.sse_closed();
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, actix_web::Error>(b), rx))
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body))
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
    /// The queue's `*.log` files and their sizes, by path.
    files: Vec<(String, u64)>,
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
        let dir = state.home.queue_dir(&queue.id);
        let files = blocking(move || Ok(log_files(&dir))).await?;
        let first = Snapshot {
            queue: Some(queue.clone()),
            files,
        };
        let mut queues = self.lock()?;
        if let Some(publisher) = queues.get(&queue.id) {
            return Ok(publisher.subscribe());
        }
        let (publisher, snapshots) = watch::channel(Arc::new(first));
        let publisher = Arc::new(publisher);
        queues.insert(queue.id.clone(), Arc::clone(&publisher));
        let (followers, state, id) = (self.clone(), Arc::clone(state), queue.id.clone());
        actix_web::rt::spawn(
            async move { follow_queue(&followers, &state, &id, &publisher).await },
        );
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

/// The follower of one queue: looks at its row and its files every
/// [`POLL`] and publishes each change, until the queue ends or is deleted
/// (that last look is published too) or no stream is left.
async fn follow_queue(followers: &Followers, state: &AppState, id: &str, publisher: &Publisher) {
    let dir = state.home.queue_dir(id);
    loop {
        tokio::time::sleep(POLL).await;
        if followers.retire(id, publisher, false) {
            return;
        }
        // The row first: files seen after a final status are complete.
        let look = {
            let (id, dir) = (id.to_owned(), dir.clone());
            let queue = state.db(move |conn| {
                let Some(detail) = store::queue_detail(conn, &id)? else {
                    return Ok(None);
                };
                let mut q = Queue::from(&detail);
                if !q.is_final() {
                    q.position = store::queue_position(conn, &id)?;
                }
                Ok(Some(q))
            });
            match queue.await {
                Ok(queue) => blocking(move || Ok(log_files(&dir)))
                    .await
                    .map(|files| Snapshot { queue, files }),
                Err(e) => Err(e),
            }
        };
        let snapshot = match look {
            Ok(snapshot) => snapshot,
            Err(e) => {
                // A busy database: the next look will do.
                tracing::warn!(queue.id = %id, error = %e, "cannot follow the queue");
                continue;
            }
        };
        let done = snapshot.queue.as_ref().is_none_or(Queue::is_final);
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

/// The queue's `*.log` files and their sizes, by path.
fn log_files(dir: &Path) -> Vec<(String, u64)> {
    walk(dir)
        .into_iter()
        .filter(|(path, _)| path.ends_with(".log"))
        .map(|(path, meta)| (path, meta.len()))
        .collect()
}

/// Per-file read positions of one stream.
#[derive(Debug)]
struct Cursor {
    path: String,
    offset: u64,
}

/// What is new in the files since the last call: complete lines only,
/// unless `all` (the queue is final), in chunks of at most [`MAX_EVENT`]
/// bytes and at most [`MAX_BATCH`] bytes in all. The flag says whether
/// more is ready to read at once.
fn new_chunks(
    dir: &Path,
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
        while cursor.offset < *size {
            if read >= MAX_BATCH {
                return (chunks, true);
            }
            let Ok((bytes, _)) = read_range(&dir.join(path), cursor.offset, MAX_EVENT as u64)
            else {
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
    dir: PathBuf,
    only: Option<String>,
    start: u64,
    tx: mpsc::Sender<Bytes>,
}

impl Stream {
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
            let is_final = current.is_final();
            loop {
                let (dir, files, only, start) = (
                    self.dir.clone(),
                    Arc::clone(&snapshot),
                    self.only.clone(),
                    self.start,
                );
                let mut c = std::mem::take(&mut cursors);
                let read = blocking(move || {
                    let (chunks, more) =
                        new_chunks(&dir, &files.files, &mut c, only.as_deref(), start, is_final);
                    Ok((chunks, more, c))
                })
                .await;
                let Ok((chunks, more, c)) = read else {
                    return Err(Gone);
                };
                cursors = c;
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
    fn paths_are_confined() {
        for bad in [
            "",
            "../x",
            "a/../../b",
            "/etc/passwd",
            "a//b",
            "./a",
            "a/.",
            "a\\b",
            "a b",
            "tasks/%2e%2e",
        ] {
            assert!(checked_path(bad).is_err(), "{bad:?}");
        }
        for good in ["queue.log", "tasks/q.1/unit.log", "build.log"] {
            assert!(checked_path(good).is_ok(), "{good:?}");
        }
        let dir = tempfile::tempdir().unwrap();
        let q = dir.path().join("q");
        std::fs::create_dir_all(&q).unwrap();
        std::fs::write(q.join("queue.log"), "x\n").unwrap();
        std::fs::write(dir.path().join("secret"), "s").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), q.join("escape.log")).unwrap();
        assert!(confined(&q, "queue.log").is_ok());
        assert!(
            confined(&q, "escape.log").is_err(),
            "a symlink out of the folder is refused"
        );
        assert!(confined(&q, "missing.log").is_err());
    }

    #[test]
    fn chunks_are_whole_lines_until_the_end() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.log"), "one\ntwo\npart").unwrap();
        let files = log_files(dir.path());
        assert_eq!(files, [("a.log".to_owned(), 12)]);
        let mut cursors = Vec::new();
        let (chunks, more) = new_chunks(dir.path(), &files, &mut cursors, None, 0, false);
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].text, "one\ntwo\n");
        assert!(!more);
        assert!(
            new_chunks(dir.path(), &files, &mut cursors, None, 0, false)
                .0
                .is_empty()
        );
        let (chunks, _) = new_chunks(dir.path(), &files, &mut cursors, None, 0, true);
        assert_eq!((chunks[0].offset, chunks[0].text.as_str()), (8, "part"));
    }

    #[test]
    fn a_large_backlog_is_read_a_batch_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let line = "x".repeat(1023) + "\n";
        let size = 3 * MAX_BATCH as usize + 5;
        std::fs::write(dir.path().join("big.log"), line.repeat(size / 1024 + 1)).unwrap();
        let files = log_files(dir.path());
        let mut cursors = Vec::new();
        let (mut batches, mut total) = (0, 0);
        loop {
            let (chunks, more) = new_chunks(dir.path(), &files, &mut cursors, None, 0, true);
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
