//! Logs in the database (DESIGN section 13): the files of a queue's
//! directory as chunks of at most [`MAX_CHUNK`] bytes keyed by queue, path
//! and offset, and the fence every write of a running queue passes.
//!
//! On PostgreSQL the worker appends here as it writes its own copy, and
//! the app reads only from here; on SQLite (one host) the files are the
//! logs and this table stays empty.

use diesel::prelude::*;

use super::{StoreError, StoreResult};
use crate::db::{self, DbConnection};
use crate::schema::{log_chunks, queues};
use crate::status::Status;

/// The largest chunk stored.
pub const MAX_CHUNK: usize = 64 * 1024;

/// What a running queue's writes are conditional on: the queue is still
/// running, on this worker, in this attempt. A worker cut off long enough
/// to be declared lost fails the fence when it comes back, kills the
/// queue's processes and writes nothing more of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub queue_id: String,
    pub worker_id: String,
    pub attempt: i32,
}

impl Fence {
    /// Fails with [`StoreError::Fenced`] unless the queue is still this
    /// worker's. Inside a write transaction the answer holds until commit.
    pub fn check(&self, conn: &mut DbConnection) -> StoreResult<()> {
        let row: Option<(String, Option<String>, i32)> = queues::table
            .filter(queues::id.eq(&self.queue_id))
            .select((queues::status, queues::worker_id, queues::attempt))
            .get_result(conn)
            .optional()?;
        let why = match row {
            None => "the queue was deleted".to_owned(),
            Some((status, worker, attempt)) => {
                if status == Status::Running.as_str()
                    && worker.as_deref() == Some(self.worker_id.as_str())
                    && attempt == self.attempt
                {
                    return Ok(());
                }
                format!(
                    "the farm ended this run meanwhile (now {status}, attempt {attempt}, worker {})",
                    worker.as_deref().unwrap_or("none")
                )
            }
        };
        Err(StoreError::Fenced(why))
    }
}

/// One chunk to store: `data` is the file `path`'s bytes from `start`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub path: String,
    pub start: i64,
    pub data: Vec<u8>,
}

/// A stored file of a queue: its path and its size (the end of its last chunk).
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct StoredFile {
    pub path: String,
    pub size: i64,
}

/// Appends `chunks` (each at most [`MAX_CHUNK`]) in one transaction that
/// passes `fence` first, and wakes the app's live readers. A chunk stored
/// already (a flush tried again after an answer that never came) is kept
/// as it is.
pub fn append_chunks(conn: &mut DbConnection, fence: &Fence, chunks: &[Chunk]) -> StoreResult<()> {
    if chunks.is_empty() {
        return Ok(());
    }
    if let Some(c) = chunks.iter().find(|c| c.data.len() > MAX_CHUNK) {
        return Err(StoreError::Conflict(format!(
            "a chunk of {} is {} bytes, over {MAX_CHUNK}",
            c.path,
            c.data.len()
        )));
    }
    db::write(conn, |conn| {
        fence.check(conn)?;
        let rows: Vec<_> = chunks
            .iter()
            .map(|c| {
                (
                    log_chunks::queue_id.eq(&fence.queue_id),
                    log_chunks::path.eq(&c.path),
                    log_chunks::start.eq(c.start),
                    log_chunks::len.eq(c.data.len() as i64),
                    log_chunks::data.eq(&c.data),
                )
            })
            .collect();
        for row in rows {
            per_backend!(conn, |c| diesel::insert_into(log_chunks::table)
                .values(row.clone())
                .on_conflict_do_nothing()
                .execute(c))?;
        }
        db::notify(
            conn,
            db::listen::CHANNEL,
            &format!("log:{}", fence.queue_id),
        )?;
        Ok(())
    })
}

/// Stores the whole file `path` (junit.xml at a queue's end), replacing
/// what was stored of it, past the fence.
pub fn put_file(
    conn: &mut DbConnection,
    fence: &Fence,
    path: &str,
    data: &[u8],
) -> StoreResult<()> {
    db::write(conn, |conn| {
        fence.check(conn)?;
        diesel::delete(
            log_chunks::table
                .filter(log_chunks::queue_id.eq(&fence.queue_id))
                .filter(log_chunks::path.eq(path)),
        )
        .execute(conn)?;
        let chunks: Vec<Chunk> = data
            .chunks(MAX_CHUNK)
            .scan(0i64, |start, part| {
                let chunk = Chunk {
                    path: path.to_owned(),
                    start: *start,
                    data: part.to_vec(),
                };
                *start += part.len() as i64;
                Some(chunk)
            })
            .collect();
        append_chunks(conn, fence, &chunks)
    })
}

/// The files stored for a queue, by path, with their sizes.
pub fn stored_files(conn: &mut DbConnection, queue_id: &str) -> StoreResult<Vec<StoredFile>> {
    use diesel::dsl::max;
    let rows: Vec<(String, Option<i64>)> = log_chunks::table
        .filter(log_chunks::queue_id.eq(queue_id))
        .group_by(log_chunks::path)
        .select((log_chunks::path, max(log_chunks::start + log_chunks::len)))
        .order(log_chunks::path)
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(path, size)| StoredFile {
            path,
            size: size.unwrap_or(0),
        })
        .collect())
}

/// Up to `max` bytes of file `path` of a queue from offset `from`, and the
/// file's stored size: what a ranged read answers.
pub fn read_stored(
    conn: &mut DbConnection,
    queue_id: &str,
    path: &str,
    from: u64,
    max: usize,
) -> StoreResult<(Vec<u8>, u64)> {
    let from = i64::try_from(from).unwrap_or(i64::MAX);
    // The chunks that end after `from`, in order, until `max` bytes.
    let rows: Vec<(i64, Vec<u8>)> = log_chunks::table
        .filter(log_chunks::queue_id.eq(queue_id))
        .filter(log_chunks::path.eq(path))
        .filter((log_chunks::start + log_chunks::len).gt(from))
        .order(log_chunks::start)
        .select((log_chunks::start, log_chunks::data))
        .limit(i64::try_from(max / MAX_CHUNK + 2).unwrap_or(i64::MAX))
        .load(conn)?;
    let size = stored_files(conn, queue_id)?
        .into_iter()
        .find(|f| f.path == path)
        .map_or(0, |f| u64::try_from(f.size).unwrap_or(0));
    let mut out = Vec::new();
    let mut at = from;
    for (start, data) in rows {
        // A gap (a chunk not flushed yet) ends the read: bytes are served
        // in order, never with a hole.
        if start > at || out.len() >= max {
            break;
        }
        let skip = usize::try_from(at - start).unwrap_or(0).min(data.len());
        let take = (data.len() - skip).min(max - out.len());
        out.extend_from_slice(&data[skip..skip + take]);
        at += take as i64;
    }
    Ok((out, size))
}
