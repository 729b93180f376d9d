//! A queue's files: the listing, ranged reads, and Server-Sent Events that
//! follow the files and the database while the queue runs.
//!
//! Every path a client names is confined to `queues/<id>/`: its components
//! are checked before it touches the disk, and the resolved file must still
//! lie inside the queue's folder (no `..`, no symlink escape).

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use actix_web::web::Bytes;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use testarena_domain::api::{LogChunk, LogFile, Queue};
use testarena_domain::store;
use tokio::sync::mpsc;

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::openapi::{Authed, BadRequestError, IdParam, NotFoundError, ValidationFailedError};
use crate::routes::queues::{checked_id, load_queue};
use crate::state::{AppState, blocking};

/// The most bytes one ranged read returns.
pub const MAX_READ: u64 = 4 * 1024 * 1024;
/// The most bytes one SSE `log` event carries.
const MAX_EVENT: usize = 64 * 1024;
/// How often an SSE stream looks at the files and the database.
const POLL: Duration = Duration::from_millis(100);
/// Comment lines keep proxies from closing an idle stream.
const KEEPALIVE: Duration = Duration::from_secs(15);

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/api/v1/queues/{id}/logs").route(web::get().to(list)))
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
    let (bytes, size) = blocking(move || {
        let file = confined(&dir, &rel)?;
        read_range(&file, offset, limit)
            .map_err(|e| ApiError::internal(format!("{}: {e}", file.display())))
    })
    .await?;
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
        .body(bytes))
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
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    let state = state.into_inner();
    state.metrics.sse_opened();
    actix_web::rt::spawn(async move {
        let _ = follow(&state, first, only, start, &tx).await;
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

fn sse(event: &str, data: &impl serde::Serialize) -> Bytes {
    let json = serde_json::to_string(data).unwrap_or_else(|_| "null".into());
    Bytes::from(format!("event: {event}\ndata: {json}\n\n"))
}

/// Per-file read positions of one stream.
struct Cursor {
    path: String,
    offset: u64,
}

/// Sends what is new in each file since the last call: complete lines only,
/// unless `all` (the queue is final), in events of at most `MAX_EVENT` bytes.
fn new_chunks(
    dir: &Path,
    cursors: &mut Vec<Cursor>,
    only: Option<&str>,
    start: u64,
    all: bool,
) -> Vec<LogChunk> {
    let mut chunks = Vec::new();
    for (path, meta) in walk(dir) {
        if only.is_some_and(|o| o != path) || !path.ends_with(".log") {
            continue;
        }
        let cursor = match cursors.iter_mut().position(|c| c.path == path) {
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
        while cursor.offset < meta.len() {
            let Ok((bytes, _)) = read_range(&dir.join(&path), cursor.offset, MAX_EVENT as u64)
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
        }
    }
    chunks
}

async fn follow(
    state: &AppState,
    first: Queue,
    only: Option<String>,
    start: u64,
    tx: &mpsc::Sender<Bytes>,
) -> Result<(), ApiError> {
    let dir = state.home.queue_dir(&first.id);
    let id = first.id.clone();
    let mut last = first;
    tx.send(sse("status", &last))
        .await
        .map_err(|_| ApiError::internal("client gone"))?;
    let mut cursors = Vec::new();
    let mut idle = std::time::Instant::now();
    let mut ticks = 0u32;
    loop {
        // The database only every few ticks: the files change far more often.
        let current = if ticks.is_multiple_of(3) || last.is_final() {
            let id = id.clone();
            let now = state
                .db(move |conn| {
                    let Some(detail) = store::queue_detail(conn, &id)? else {
                        return Ok(None);
                    };
                    let mut q = Queue::from(&detail);
                    if !q.is_final() {
                        q.position = store::queue_position(conn, &id)?;
                    }
                    Ok(Some(q))
                })
                .await?;
            match now {
                Some(q) => q,
                None => {
                    // Deleted while followed.
                    let _ = tx
                        .send(sse("end", &serde_json::json!({"status": "deleted"})))
                        .await;
                    return Ok(());
                }
            }
        } else {
            last.clone()
        };
        ticks = ticks.wrapping_add(1);
        let is_final = current.is_final();
        let (d, o) = (dir.clone(), only.clone());
        let mut c = std::mem::take(&mut cursors);
        let (chunks, c) = blocking(move || {
            let chunks = new_chunks(&d, &mut c, o.as_deref(), start, is_final);
            Ok((chunks, c))
        })
        .await?;
        cursors = c;
        for chunk in &chunks {
            tx.send(sse("log", chunk))
                .await
                .map_err(|_| ApiError::internal("client gone"))?;
        }
        if !chunks.is_empty() {
            idle = std::time::Instant::now();
        }
        if current != last {
            tx.send(sse("status", &current))
                .await
                .map_err(|_| ApiError::internal("client gone"))?;
            last = current;
        }
        if is_final {
            tx.send(sse("end", &last))
                .await
                .map_err(|_| ApiError::internal("client gone"))?;
            return Ok(());
        }
        if idle.elapsed() >= KEEPALIVE {
            tx.send(Bytes::from_static(b": keepalive\n\n"))
                .await
                .map_err(|_| ApiError::internal("client gone"))?;
            idle = std::time::Instant::now();
        }
        tokio::time::sleep(POLL).await;
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
        let mut cursors = Vec::new();
        let chunks = new_chunks(dir.path(), &mut cursors, None, 0, false);
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].text, "one\ntwo\n");
        assert!(new_chunks(dir.path(), &mut cursors, None, 0, false).is_empty());
        let chunks = new_chunks(dir.path(), &mut cursors, None, 0, true);
        assert_eq!((chunks[0].offset, chunks[0].text.as_str()), (8, "part"));
    }
}
