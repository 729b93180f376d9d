//! Seeding: storing queues that have already run, in bulk, for a
//! database that starts with history (benchmarks, imports from the older
//! systems).

use crate::db::DbConnection;
use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{StoreResult, conflict_on_unique};
use crate::models::{NewQueue, NewTask};
use crate::schema::{queues, tasks};
use crate::status::{Kind, Status, transition};

/// A queue that has already run, for [`insert_ended_queues`].
#[derive(Debug, Clone, PartialEq)]
pub struct EndedQueue {
    pub queue: NewQueue,
    pub tasks: Vec<NewTask>,
    /// The final status of the queue and of each of its tasks.
    pub status: Status,
    pub worker_id: String,
    pub started_at: NaiveDateTime,
    pub finished_at: NaiveDateTime,
}

/// Stores queues that have already run, with their tasks, in one
/// transaction and in order (so their `seq` grows with the slice): each
/// goes `waiting` → `running` → its final status, moves the status machine
/// checks. For seeding a database (benchmarks, imports from the older
/// systems); ids already stored are a [`StoreError::Conflict`] and then
/// nothing is stored. Returns how many queues were stored.
pub fn insert_ended_queues(conn: &mut DbConnection, ended: &[EndedQueue]) -> StoreResult<usize> {
    for e in ended {
        for kind in [Kind::Queue, Kind::Task] {
            let running = transition(kind, Status::Waiting, Status::Running)?;
            transition(kind, running, e.status)?;
        }
    }
    // Well under SQLite's limit of bound parameters per statement.
    const ROWS: usize = 1000;
    crate::db::write(conn, |conn| {
        for chunk in ended.chunks(ROWS) {
            let rows: Vec<_> = chunk
                .iter()
                .map(|e| {
                    (
                        &e.queue,
                        queues::status.eq(e.status.as_str()),
                        queues::worker_id.eq(&e.worker_id),
                        queues::started_at.eq(e.started_at),
                        queues::finished_at.eq(e.finished_at),
                    )
                })
                .collect();
            per_backend!(conn, |c| diesel::insert_into(queues::table)
                .values(rows)
                .execute(c))
            .map_err(|e| conflict_on_unique(e, || "a queue id exists already".into()))?;
            let tasks: Vec<_> = chunk
                .iter()
                .flat_map(|e| {
                    (0i32..).zip(&e.tasks).map(move |(position, task)| {
                        (
                            tasks::id.eq(&task.id),
                            tasks::queue_id.eq(&e.queue.id),
                            tasks::position.eq(position),
                            tasks::scenario.eq(&task.scenario),
                            tasks::status.eq(e.status.as_str()),
                            tasks::started_at.eq(e.started_at),
                            tasks::finished_at.eq(e.finished_at),
                        )
                    })
                })
                .collect();
            for rows in tasks.chunks(ROWS) {
                per_backend!(conn, |c| diesel::insert_into(tasks::table)
                    .values(rows)
                    .execute(c))
                .map_err(|e| conflict_on_unique(e, || "a task id exists already".into()))?;
            }
        }
        Ok(ended.len())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{QueueFilter, StoreError, get_queue, list_queues, now, queue_detail};

    fn ended(id: &str, status: Status) -> EndedQueue {
        let at = now();
        EndedQueue {
            queue: NewQueue {
                id: id.into(),
                repo: "firmware".into(),
                branch: "main".into(),
                commit_sha: None,
                target: "esp32".into(),
                owner: "ann".into(),
                priority: 0,
                timeout_s: None,
                created_at: at,
                no_cache: false,
            },
            tasks: vec![NewTask {
                id: format!("{id}.1"),
                scenario: "s.xml".into(),
                only: None,
            }],
            status,
            worker_id: "w".into(),
            started_at: at,
            finished_at: at,
        }
    }

    #[test]
    fn ended_queues_are_stored_in_order_with_their_tasks() {
        let dir = tempfile::tempdir().unwrap();
        let pool = crate::db::open_sqlite(&dir.path().join("t.db"), 1).unwrap();
        let mut conn = pool.get().unwrap();
        let batch: Vec<_> = (0..2500)
            .map(|i| ended(&format!("q{i}"), Status::Passed))
            .collect();
        assert_eq!(insert_ended_queues(&mut conn, &batch).unwrap(), 2500);
        let page = list_queues(
            &mut conn,
            &QueueFilter {
                limit: 2,
                ..Default::default()
            },
        )
        .unwrap();
        let ids: Vec<_> = page.items.iter().map(|q| q.id.as_str()).collect();
        assert_eq!(ids, ["q2499", "q2498"]);
        let detail = queue_detail(&mut conn, "q7").unwrap().unwrap();
        assert_eq!(detail.queue.status(), Status::Passed);
        assert_eq!(detail.queue.worker_id.as_deref(), Some("w"));
        assert_eq!(detail.tasks.len(), 1);
        assert_eq!(detail.tasks[0].0.status(), Status::Passed);
        // A duplicate id stores nothing; a status no run ends in is refused.
        let again = [ended("new", Status::Passed), ended("q1", Status::Passed)];
        assert!(matches!(
            insert_ended_queues(&mut conn, &again),
            Err(StoreError::Conflict(_))
        ));
        assert!(get_queue(&mut conn, "new").unwrap().is_none());
        assert!(matches!(
            insert_ended_queues(&mut conn, &[ended("w", Status::Waiting)]),
            Err(StoreError::Illegal(_))
        ));
    }
}
