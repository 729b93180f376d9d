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

/// The reason the farm gives a queue whose worker it lost (store::mark_lost).
const LOST: &str = "worker lost";

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
                .values(row)
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
    // The chunks that overlap [from, from + max), in order: however small
    // the worker's flushes made them.
    let until = from.saturating_add(i64::try_from(max).unwrap_or(i64::MAX));
    let rows: Vec<(i64, Vec<u8>)> = log_chunks::table
        .filter(log_chunks::queue_id.eq(queue_id))
        .filter(log_chunks::path.eq(path))
        .filter((log_chunks::start + log_chunks::len).gt(from))
        .filter(log_chunks::start.lt(until))
        .order(log_chunks::start)
        .select((log_chunks::start, log_chunks::data))
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

impl Fence {
    /// Fails with [`StoreError::Fenced`] unless this run's attempt ended
    /// by this worker's own end: the queue is final with this attempt on
    /// this worker, or waits for a later attempt after this one ended
    /// other than `worker lost`. The worker's last log lines (the
    /// timeline's `finished` line) and `junit.xml` pass it after the end.
    pub fn check_ended(&self, conn: &mut DbConnection) -> StoreResult<()> {
        use crate::schema::attempts;
        let row: Option<(String, Option<String>, i32, Option<String>)> = queues::table
            .filter(queues::id.eq(&self.queue_id))
            .select((
                queues::status,
                queues::worker_id,
                queues::attempt,
                queues::status_reason,
            ))
            .get_result(conn)
            .optional()?;
        let Some((status, worker, attempt, reason)) = row else {
            return Err(StoreError::Fenced("the queue was deleted".to_owned()));
        };
        // A queue the farm ended `worker lost` keeps its worker id: that
        // end is not this run's own.
        let final_here = status.parse::<Status>().is_ok_and(|s| s.is_final())
            && worker.as_deref() == Some(self.worker_id.as_str())
            && attempt == self.attempt
            && reason.as_deref() != Some(LOST);
        let retried_after_us = attempt > self.attempt
            && attempts::table
                .filter(attempts::queue_id.eq(&self.queue_id))
                .filter(attempts::attempt.eq(self.attempt))
                .filter(attempts::worker.eq(&self.worker_id))
                .filter(attempts::reason.is_null().or(attempts::reason.ne(LOST)))
                .count()
                .get_result::<i64>(conn)?
                > 0;
        if final_here || retried_after_us {
            Ok(())
        } else {
            Err(StoreError::Fenced(format!(
                "the farm ended this run (now {status}, attempt {attempt})"
            )))
        }
    }
}

/// [`append_chunks`] after the run's own end: past
/// [`Fence::check_ended`] instead of [`Fence::check`].
pub fn append_ended_chunks(
    conn: &mut DbConnection,
    fence: &Fence,
    chunks: &[Chunk],
) -> StoreResult<()> {
    db::write(conn, |conn| {
        fence.check_ended(conn)?;
        insert_chunks(conn, &fence.queue_id, chunks)
    })
}

/// Stores the whole file `path` of a queue that has ended (`junit.xml`),
/// replacing what was stored of it: past [`Fence::check_ended`] when the
/// run's worker stores it, or, from the recovery of a lost queue
/// (`fence` `None`), once the queue is final or waits for its next attempt.
pub fn put_ended_file(
    conn: &mut DbConnection,
    queue_id: &str,
    fence: Option<&Fence>,
    path: &str,
    data: &[u8],
) -> StoreResult<()> {
    db::write(conn, |conn| {
        match fence {
            Some(fence) => fence.check_ended(conn)?,
            None => {
                let status: Option<String> = queues::table
                    .filter(queues::id.eq(queue_id))
                    .select(queues::status)
                    .get_result(conn)
                    .optional()?;
                if status.as_deref() == Some(Status::Running.as_str()) || status.is_none() {
                    return Err(StoreError::Fenced(format!(
                        "queue {queue_id} is running or gone"
                    )));
                }
            }
        }
        diesel::delete(
            log_chunks::table
                .filter(log_chunks::queue_id.eq(queue_id))
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
        insert_chunks(conn, queue_id, &chunks)
    })
}

/// Moves what attempt `earlier` of the fenced queue stored (`build.log`,
/// `tasks/...`, `junit.xml`) under `attempts/<earlier>/`, as the worker
/// moves its own copies (the timeline stays: it tells every attempt).
/// Files moved before stay where they are. Returns the paths moved.
pub fn archive_attempt(
    conn: &mut DbConnection,
    fence: &Fence,
    earlier: i32,
) -> StoreResult<Vec<String>> {
    db::write(conn, |conn| {
        fence.check(conn)?;
        let prefix = format!("attempts/{earlier}/");
        let paths: Vec<String> = log_chunks::table
            .filter(log_chunks::queue_id.eq(&fence.queue_id))
            .select(log_chunks::path)
            .distinct()
            .load(conn)?;
        let mut moved = Vec::new();
        for path in &paths {
            let of_attempt =
                path == "build.log" || path == "junit.xml" || path.starts_with("tasks/");
            let to = format!("{prefix}{path}");
            if !of_attempt || paths.contains(&to) {
                continue;
            }
            diesel::update(
                log_chunks::table
                    .filter(log_chunks::queue_id.eq(&fence.queue_id))
                    .filter(log_chunks::path.eq(path)),
            )
            .set(log_chunks::path.eq(&to))
            .execute(conn)?;
            moved.push(path.clone());
        }
        Ok(moved)
    })
}

/// Inserts `chunks` of queue `queue_id` (each kept as it is if stored
/// already) and wakes the live readers: the body of the writes above.
fn insert_chunks(conn: &mut DbConnection, queue_id: &str, chunks: &[Chunk]) -> StoreResult<()> {
    if let Some(c) = chunks.iter().find(|c| c.data.len() > MAX_CHUNK) {
        return Err(StoreError::Conflict(format!(
            "a chunk of {} is {} bytes, over {MAX_CHUNK}",
            c.path,
            c.data.len()
        )));
    }
    for c in chunks {
        let row = (
            log_chunks::queue_id.eq(queue_id),
            log_chunks::path.eq(&c.path),
            log_chunks::start.eq(c.start),
            log_chunks::len.eq(c.data.len() as i64),
            log_chunks::data.eq(&c.data),
        );
        per_backend!(conn, |c| diesel::insert_into(log_chunks::table)
            .values(row)
            .on_conflict_do_nothing()
            .execute(c))?;
    }
    db::notify(conn, db::listen::CHANNEL, &format!("log:{queue_id}"))?;
    Ok(())
}
