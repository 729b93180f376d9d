//! Where a queue's files come from: its folder under `home` (SQLite, one
//! host) or the database's `log_chunks` (PostgreSQL, no shared
//! filesystem; DESIGN section 13). The handlers and the follower ask a
//! [`LogSource`] and never which backend they have.
//!
//! Reads from the database serve bytes in order only: a range that meets
//! a gap (a chunk not flushed yet) ends there. On PostgreSQL the worker's
//! last flush may commit just after the queue's final status, so a log is
//! complete once the queue is final and `junit.xml` (stored after the
//! last flush) is there, the queue never started, or it ended more than
//! [`SETTLE`] ago.

use std::path::PathBuf;

use actix_web::web::Bytes;
use chrono::{DateTime, Utc};
use testarena_domain::api::LogFile;
use testarena_domain::db::DbPool;
use testarena_domain::models::QueueRow;
use testarena_domain::status::Status;
use testarena_domain::store::{self, StoreError};

use super::files::{self, checked_path};
use crate::error::ApiError;
use crate::state::{AppState, blocking};

/// How long after a queue's end its stored logs may still grow (the
/// worker's last flush) when no `junit.xml` says they are all there.
pub const SETTLE: std::time::Duration = std::time::Duration::from_secs(10);
/// The bytes of a ranged read held in memory at once (at most three
/// stored chunks are loaded for it).
const READ_PIECE: usize = 64 * 1024;

/// A queue's files: on disk, or in the database.
#[derive(Clone)]
pub enum LogSource {
    Files(PathBuf),
    Db { pool: DbPool, queue_id: String },
}

impl std::fmt::Debug for LogSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Files(dir) => f.debug_tuple("Files").field(dir).finish(),
            Self::Db { queue_id, .. } => f.debug_struct("Db").field("queue_id", queue_id).finish(),
        }
    }
}

/// A ranged read: the file's size now and its bytes from the offset.
pub struct Range {
    pub size: u64,
    /// The body's length when known up front (a file, or a short read
    /// from the database); otherwise the body is sent chunked.
    pub len: Option<u64>,
    pub body: futures_util::stream::BoxStream<'static, Result<Bytes, actix_web::Error>>,
}

impl std::fmt::Debug for Range {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Range")
            .field("size", &self.size)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl LogSource {
    /// The files of queue `id` on this app's backend (`id` checked already).
    pub fn of(state: &AppState, id: &str) -> Self {
        if state.hub.is_listening() {
            Self::Db {
                pool: state.pool.clone(),
                queue_id: id.to_owned(),
            }
        } else {
            Self::Files(state.home.queue_dir(id))
        }
    }

    /// Every file of the queue, sorted by path. Stored files carry the
    /// queue's last change (end, start or creation) as `modified_at`.
    pub async fn list(&self) -> Result<Vec<LogFile>, ApiError> {
        let (pool, id) = match self {
            Self::Files(dir) => return files::list(dir.clone()).await,
            Self::Db { pool, queue_id } => (pool.clone(), queue_id.clone()),
        };
        blocking(move || {
            let mut conn = pool.get().map_err(StoreError::from)?;
            let row = store::get_queue(&mut conn, &id)?
                .ok_or_else(|| ApiError::NotFound(format!("no queue {id:?}")))?;
            let at = row.finished_at.or(row.started_at).unwrap_or(row.created_at);
            let modified_at = DateTime::<Utc>::from_naive_utc_and_offset(at, Utc);
            Ok(store::logs::stored_files(&mut conn, &id)?
                .into_iter()
                .map(|f| LogFile {
                    path: f.path,
                    size: u64::try_from(f.size).unwrap_or(0),
                    modified_at,
                })
                .collect())
        })
        .await
    }

    /// `limit` bytes at most of file `rel` from `offset`, read a piece at
    /// a time as the client takes them; 404 when there is no such file.
    pub async fn range(&self, rel: String, offset: u64, limit: u64) -> Result<Range, ApiError> {
        use futures_util::StreamExt as _;
        checked_path(&rel)?;
        let (pool, id) = match self {
            Self::Files(dir) => {
                let (file, size) = files::open(dir.clone(), rel).await?;
                let len = limit.min(size.saturating_sub(offset));
                return Ok(Range {
                    size,
                    len: Some(len),
                    body: files::pieces(file, offset, len).boxed(),
                });
            }
            Self::Db { pool, queue_id } => (pool.clone(), queue_id.clone()),
        };
        let want = usize::try_from(limit).unwrap_or(usize::MAX).min(READ_PIECE);
        let (first, size) = {
            let (pool, id, rel) = (pool.clone(), id.clone(), rel.clone());
            blocking(move || read_db(&pool, &id, &rel, offset, want)).await?
        };
        let Some(size) = size else {
            return Err(ApiError::NotFound(format!("no log {rel:?}")));
        };
        let got = first.len() as u64;
        if got < want as u64 || got >= limit {
            // All there is (up to a gap or the end), or all that was asked.
            let len = got.min(limit);
            let body = futures_util::stream::once(async move { Ok(Bytes::from(first)) });
            return Ok(Range {
                size,
                len: Some(len),
                body: body.boxed(),
            });
        }
        // More may follow: the rest a piece at a time, until the limit, the
        // end or a gap.
        let rest =
            futures_util::stream::try_unfold((offset + got, offset + limit), move |(at, end)| {
                let (pool, id, rel) = (pool.clone(), id.clone(), rel.clone());
                async move {
                    if at >= end {
                        return Ok(None);
                    }
                    let want = usize::try_from(end - at)
                        .unwrap_or(usize::MAX)
                        .min(READ_PIECE);
                    let (piece, _) = blocking(move || read_db(&pool, &id, &rel, at, want)).await?;
                    if piece.is_empty() {
                        return Ok(None);
                    }
                    let next = at + piece.len() as u64;
                    Ok::<_, actix_web::Error>(Some((Bytes::from(piece), (next, end))))
                }
            });
        let first = futures_util::stream::once(async move { Ok(Bytes::from(first)) });
        Ok(Range {
            size,
            len: None,
            body: first.chain(rest).boxed(),
        })
    }

    /// The queue's files and their sizes, by path (blocking: the
    /// follower's look). A folder that cannot be read has none.
    pub fn sizes(&self) -> Result<Vec<(String, u64)>, ApiError> {
        match self {
            Self::Files(dir) => Ok(files::file_sizes(dir)),
            Self::Db { pool, queue_id } => {
                let mut conn = pool.get().map_err(StoreError::from)?;
                Ok(store::logs::stored_files(&mut conn, queue_id)?
                    .into_iter()
                    .map(|f| (f.path, u64::try_from(f.size).unwrap_or(0)))
                    .collect())
            }
        }
    }

    /// At most `limit` bytes of `path` from `offset` (blocking: the
    /// follower's reads); empty past the end or at a gap.
    pub fn read(&self, path: &str, offset: u64, limit: u64) -> Result<Vec<u8>, ApiError> {
        match self {
            Self::Files(dir) => files::read_range(&dir.join(checked_path(path)?), offset, limit)
                .map(|(bytes, _)| bytes)
                .map_err(ApiError::internal),
            Self::Db { pool, queue_id } => {
                let max = usize::try_from(limit).unwrap_or(usize::MAX);
                Ok(read_db(pool, queue_id, path, offset, max)?.0)
            }
        }
    }

    /// The whole file `path` if there is one (JUnit), read in pieces.
    pub async fn read_all(&self, path: &str) -> Result<Option<Vec<u8>>, ApiError> {
        let (this, path) = (self.clone(), path.to_owned());
        blocking(move || match &this {
            Self::Files(dir) => match std::fs::read(dir.join(checked_path(&path)?)) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(ApiError::internal(e)),
            },
            Self::Db { pool, queue_id } => {
                let (mut all, size) = read_db(pool, queue_id, &path, 0, READ_PIECE)?;
                let Some(size) = size else { return Ok(None) };
                while (all.len() as u64) < size {
                    let (piece, _) = read_db(pool, queue_id, &path, all.len() as u64, READ_PIECE)?;
                    if piece.is_empty() {
                        break;
                    }
                    all.extend_from_slice(&piece);
                }
                Ok(Some(all))
            }
        })
        .await
    }

    /// Whether the queue's files will not change any more (the answer's
    /// `X-Log-Complete`), `row` being the queue now.
    pub async fn complete(&self, row: &QueueRow) -> Result<bool, ApiError> {
        let status = row.status();
        match self {
            Self::Files(_) => Ok(status.is_final()),
            Self::Db { .. } if !status.is_final() => Ok(false),
            Self::Db { .. } => {
                let this = self.clone();
                let has_junit =
                    blocking(move || Ok(this.sizes()?.iter().any(|(path, _)| path == JUNIT)))
                        .await?;
                Ok(settled(
                    status,
                    has_junit,
                    row.started_at.is_some(),
                    row.finished_at,
                ))
            }
        }
    }

    /// True for the database.
    pub fn is_db(&self) -> bool {
        matches!(self, Self::Db { .. })
    }
}

/// The JUnit file's path in a queue's folder.
pub const JUNIT: &str = "junit.xml";

/// Stored logs of a queue with `status` are complete: final, and JUnit is
/// stored, or the queue never started, or it ended [`SETTLE`] ago.
pub fn settled(
    status: Status,
    has_junit: bool,
    started: bool,
    finished_at: Option<chrono::NaiveDateTime>,
) -> bool {
    let long_ago = finished_at.is_some_and(|at| {
        store::now()
            .signed_duration_since(at)
            .to_std()
            .is_ok_and(|d| d >= SETTLE)
    });
    status.is_final() && (has_junit || !started || long_ago)
}

/// Bytes of a stored file, and its stored size (`None`: no such file).
fn read_db(
    pool: &DbPool,
    id: &str,
    path: &str,
    offset: u64,
    max: usize,
) -> Result<(Vec<u8>, Option<u64>), ApiError> {
    let mut conn = pool.get().map_err(StoreError::from)?;
    let (bytes, size) = store::logs::read_stored(&mut conn, id, path, offset, max)?;
    // `read_stored` answers 0 for a file it has no chunk of, and a stored
    // file has at least one non-empty chunk.
    Ok((bytes, (size > 0).then_some(size)))
}
