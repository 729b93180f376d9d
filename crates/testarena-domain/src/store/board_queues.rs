//! Queues that run on boards (DESIGN section 10): a submission's board
//! requirement stored with the queue in one transaction, and the health
//! checks the system user owns. Above both [`super::queues`] and
//! [`super::boards`], which import nothing from here.

use crate::db::DbConnection;
use chrono::Utc;
use diesel::prelude::*;

use super::boards::{self, BoardRow};
use super::queues::{create_queue_in, get_queue};
use super::{StoreError, StoreResult, now};
use crate::models::{NewQueue, NewTask, QueueRow};
use crate::schema::queues;
use crate::status::Status;
use crate::validate::SYSTEM_USER;

/// The priority of health checks: above any a user may give (1000 is the
/// most a submission may ask; ties go to the older queue).
pub const HEALTH_PRIORITY: i32 = 1000;

/// Stores a queue with its board requirement (`board`: `any` or an id;
/// `tags` sorted) in one transaction, so that no worker sees it as a QEMU
/// queue in between.
pub fn create_board_queue(
    conn: &mut DbConnection,
    queue: &NewQueue,
    new_tasks: &[NewTask],
    board: &str,
    tags: &[String],
) -> StoreResult<QueueRow> {
    crate::db::write(conn, |conn| {
        let row = create_queue_in(conn, queue, new_tasks)?;
        Ok(per_backend!(conn, |c| diesel::update(
            queues::table.filter(queues::seq.eq(row.seq))
        )
        .set((
            queues::board.eq(board),
            queues::board_tags.eq(boards::join_tags(tags)),
        ))
        .returning(QueueRow::as_returning())
        .get_result(c))?)
    })
}

/// Asks for a health check of `board_id`: its pending one if there is one,
/// else a new queue owned by the system user, pinned to the board, at
/// [`HEALTH_PRIORITY`], running the branch's tip as of its claim. A board
/// without a health check is a [`StoreError::Conflict`].
pub fn request_health_check(conn: &mut DbConnection, board_id: &str) -> StoreResult<QueueRow> {
    crate::db::write(conn, |conn| {
        let b: BoardRow = boards::get_board(conn, board_id)?
            .ok_or_else(|| StoreError::not_found("board", board_id))?;
        if let Some(pending) = &b.health_queue
            && let Some(q) = get_queue(conn, pending)?
            && !q.status().is_final()
        {
            return Ok(q);
        }
        let (Some(repo), Some(branch), Some(scenario)) =
            (&b.health_repo, &b.health_branch, &b.health_scenario)
        else {
            return Err(StoreError::Conflict(format!(
                "board {board_id:?} has no health check in its worker's config"
            )));
        };
        let id = format!(
            "health-{}-{}-{:04x}",
            truncate(board_id, 32),
            Utc::now().format("%Y%m%d-%H%M%S"),
            rand::random::<u16>()
        );
        let new = NewQueue {
            id: id.clone(),
            repo: repo.clone(),
            branch: branch.clone(),
            commit_sha: None,
            target: b.target.clone(),
            owner: SYSTEM_USER.to_owned(),
            priority: HEALTH_PRIORITY,
            timeout_s: None,
            created_at: now(),
            no_cache: false,
        };
        let tasks = [NewTask {
            id: format!("{id}.1"),
            scenario: scenario.clone(),
            only: None,
        }];
        let row = create_queue_in(conn, &new, &tasks)?;
        let row = per_backend!(conn, |c| diesel::update(
            queues::table.filter(queues::seq.eq(row.seq))
        )
        .set(queues::board.eq(board_id))
        .returning(QueueRow::as_returning())
        .get_result(c))?;
        boards::set_health_queue(conn, board_id, &id)?;
        debug_assert_eq!(row.status(), Status::Waiting);
        Ok(row)
    })
}

fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
