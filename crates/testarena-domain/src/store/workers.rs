//! The worker registry: who runs, with how many slots, last seen when.

use std::collections::HashMap;

use crate::db::DbConnection;
use chrono::NaiveDateTime;
use diesel::dsl::count_star;
use diesel::prelude::*;

use super::StoreResult;
use crate::models::WorkerRow;
use crate::schema::{queues, workers};
use crate::status::Status;

/// Registers a worker at start, or updates its row when the id is known.
pub fn register_worker(
    conn: &mut DbConnection,
    id: &str,
    slots: u32,
    version: &str,
    pid: u32,
) -> StoreResult<WorkerRow> {
    // The database's clock, like every heartbeat (DESIGN section 13).
    let at = crate::db::db_now(conn)?;
    let row = WorkerRow {
        id: id.to_owned(),
        slots: i32::try_from(slots).unwrap_or(i32::MAX),
        version: version.to_owned(),
        pid: i32::try_from(pid).unwrap_or(i32::MAX),
        started_at: at,
        last_seen: at,
    };
    Ok(per_backend!(conn, |c| diesel::insert_into(workers::table)
        .values(&row)
        .on_conflict(workers::id)
        .do_update()
        .set((
            workers::slots.eq(row.slots),
            workers::version.eq(&row.version),
            workers::pid.eq(row.pid),
            workers::started_at.eq(at),
            workers::last_seen.eq(at),
        ))
        .returning(WorkerRow::as_returning())
        .get_result(c))?)
}

/// Records a heartbeat; returns the time written, or `None` when the worker
/// has no row (someone deleted it): the worker should register again.
pub fn heartbeat(conn: &mut DbConnection, id: &str) -> StoreResult<Option<NaiveDateTime>> {
    let at = crate::db::db_now(conn)?;
    let rows = diesel::update(workers::table.find(id))
        .set(workers::last_seen.eq(at))
        .execute(conn)?;
    Ok((rows > 0).then_some(at))
}

/// Every registered worker with the ids of the queues it runs now.
pub fn list_workers(conn: &mut DbConnection) -> StoreResult<Vec<(WorkerRow, Vec<String>)>> {
    let rows = workers::table
        .order(workers::id)
        .select(WorkerRow::as_select())
        .load(conn)?;
    let running: Vec<(Option<String>, String)> = queues::table
        .filter(queues::status.eq(Status::Running.as_str()))
        .order(queues::seq)
        .select((queues::worker_id, queues::id))
        .load(conn)?;
    let mut by_worker: HashMap<String, Vec<String>> = HashMap::new();
    for (worker, queue) in running {
        if let Some(worker) = worker {
            by_worker.entry(worker).or_default().push(queue);
        }
    }
    Ok(rows
        .into_iter()
        .map(|w| {
            let q = by_worker.remove(&w.id).unwrap_or_default();
            (w, q)
        })
        .collect())
}

/// How many queues a worker runs now.
pub fn running_count(conn: &mut DbConnection, worker_id: &str) -> StoreResult<i64> {
    Ok(queues::table
        .filter(queues::status.eq(Status::Running.as_str()))
        .filter(queues::worker_id.eq(worker_id))
        .select(count_star())
        .get_result(conn)?)
}
