//! Queues, their tasks and test cases: creation, listing, the claim,
//! aborts, results, recovery and deletion.

use std::collections::HashMap;

use crate::db::DbConnection;
use chrono::NaiveDateTime;
use diesel::dsl::count_star;
use diesel::prelude::*;

use super::{StoreError, StoreResult, conflict_on_unique, now};
use crate::models::{
    AttemptRow, NewQueue, NewTask, NewTestCase, QueueDetail, QueueRow, TaskRow, TestCaseRow,
};
use crate::schema::{attempts, queues, tasks, test_cases};
use crate::status::{Kind, Status, transition};

/// The most queues one page of [`list_queues`] returns.
pub const MAX_PAGE: i64 = 200;

/// Filters and the cursor of [`list_queues`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueFilter {
    pub status: Option<Status>,
    pub owner: Option<String>,
    pub branch: Option<String>,
    /// Only queues created before the one with this `seq` (the cursor).
    pub before: Option<i32>,
    /// 1 to [`MAX_PAGE`]; values outside are clamped.
    pub limit: i64,
}

/// One page of queues, newest first, and the cursor of the next page.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuePage {
    pub items: Vec<QueueRow>,
    pub next: Option<i32>,
}

/// What [`request_abort`] did, with the queue as it is now.
#[derive(Debug, Clone, PartialEq)]
pub enum AbortOutcome {
    /// The queue was waiting and is now `aborted`.
    Aborted(QueueDetail),
    /// The queue is running; its worker will stop it.
    Requested(QueueDetail),
    /// The queue had already ended.
    AlreadyFinal(QueueRow),
}

/// Who asks to change a queue (abort, delete): its owner or an admin may.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actor<'a> {
    pub name: &'a str,
    pub admin: bool,
}

impl Actor<'_> {
    /// [`StoreError::Forbidden`] unless this actor may change `queue`.
    fn may_change(&self, queue: &QueueRow) -> StoreResult<()> {
        if self.admin || self.name == queue.owner {
            Ok(())
        } else {
            Err(StoreError::Forbidden(format!(
                "only {} or an admin may do this",
                queue.owner
            )))
        }
    }
}

/// Stores a queue and its tasks in one transaction. A queue or task id that
/// exists already is a [`StoreError::Conflict`] and nothing is stored.
pub fn create_queue(
    conn: &mut DbConnection,
    queue: &NewQueue,
    new_tasks: &[NewTask],
) -> StoreResult<QueueRow> {
    crate::db::write(conn, |conn| create_queue_in(conn, queue, new_tasks))
}

/// [`create_queue`] inside the caller's transaction.
pub(super) fn create_queue_in(
    conn: &mut DbConnection,
    queue: &NewQueue,
    new_tasks: &[NewTask],
) -> StoreResult<QueueRow> {
    let row = per_backend!(conn, |c| diesel::insert_into(queues::table)
        .values(queue)
        .returning(QueueRow::as_returning())
        .get_result(c))
    .map_err(|e| conflict_on_unique(e, || format!("queue {:?} exists already", queue.id)))?;
    for (position, task) in (0i32..).zip(new_tasks) {
        diesel::insert_into(tasks::table)
            .values((
                tasks::id.eq(&task.id),
                tasks::queue_id.eq(&queue.id),
                tasks::position.eq(position),
                tasks::scenario.eq(&task.scenario),
                tasks::only.eq(task.only_json()),
            ))
            .execute(conn)
            .map_err(|e| conflict_on_unique(e, || format!("task {:?} exists already", task.id)))?;
    }
    Ok(row)
}

/// One queue, without its tasks.
pub fn get_queue(conn: &mut DbConnection, id: &str) -> StoreResult<Option<QueueRow>> {
    // By a unique key: `get_result`, not `first` (see the store's module docs).
    Ok(queues::table
        .filter(queues::id.eq(id))
        .select(QueueRow::as_select())
        .get_result(conn)
        .optional()?)
}

/// The queue, for a change: on PostgreSQL its row is locked until the
/// transaction ends, so a claim (which skips locked rows) and this change
/// never both act on what they read.
pub(super) fn require_queue(conn: &mut DbConnection, id: &str) -> StoreResult<QueueRow> {
    let row = match conn {
        DbConnection::Sqlite(_) => get_queue(conn, id)?,
        DbConnection::Postgresql(c) => queues::table
            .filter(queues::id.eq(id))
            .select(QueueRow::as_select())
            .for_update()
            .get_result(c)
            .optional()?,
    };
    row.ok_or_else(|| StoreError::not_found("queue", id))
}

/// One queue with its tasks and their test cases, in order, as of one
/// moment (a queue deleted meanwhile is not returned without its tasks).
pub fn queue_detail(conn: &mut DbConnection, id: &str) -> StoreResult<Option<QueueDetail>> {
    super::snapshot(conn, |conn| {
        get_queue(conn, id)?
            .map(|queue| detail_of(conn, queue))
            .transpose()
    })
}

/// A queue's status alone (what the log routes need), `None` when there is
/// no such queue.
pub fn queue_status(conn: &mut DbConnection, id: &str) -> StoreResult<Option<Status>> {
    let status: Option<String> = queues::table
        .filter(queues::id.eq(id))
        .select(queues::status)
        .get_result(conn)
        .optional()?;
    Ok(status.as_deref().map(crate::models::parse_status))
}

/// The tasks and test cases of a queue already read, in order: one query
/// for both (a round trip each counts on PostgreSQL), and none for the
/// earlier attempts of a first attempt, which has none (an attempt is
/// recorded as the next one begins).
pub(super) fn detail_of(conn: &mut DbConnection, queue: QueueRow) -> StoreResult<QueueDetail> {
    let rows: Vec<(TaskRow, Option<TestCaseRow>)> = tasks::table
        .left_join(test_cases::table)
        .filter(tasks::queue_id.eq(&queue.id))
        .order((tasks::position, test_cases::id))
        .select((TaskRow::as_select(), Option::<TestCaseRow>::as_select()))
        .load(conn)?;
    let mut tasks: Vec<(TaskRow, Vec<TestCaseRow>)> = Vec::new();
    for (task, case) in rows {
        match tasks.last_mut() {
            Some((last, cases)) if last.id == task.id => cases.extend(case),
            _ => tasks.push((task, case.into_iter().collect())),
        }
    }
    let attempts = if queue.attempt > 1 {
        attempts::table
            .filter(attempts::queue_id.eq(&queue.id))
            .order(attempts::attempt)
            .select(AttemptRow::as_select())
            .load(conn)?
    } else {
        Vec::new()
    };
    Ok(QueueDetail {
        queue,
        tasks,
        attempts,
    })
}

/// The tasks of these queues, by queue then position.
pub fn tasks_of(conn: &mut DbConnection, queue_ids: &[&str]) -> StoreResult<Vec<TaskRow>> {
    // One queue is the common case (a queue's page, a run): `=` keeps the
    // statement in the cache, which `IN (?, ...)` of any length cannot.
    if let [queue_id] = queue_ids {
        return Ok(tasks::table
            .filter(tasks::queue_id.eq(queue_id))
            .order(tasks::position)
            .select(TaskRow::as_select())
            .load(conn)?);
    }
    Ok(tasks::table
        .filter(tasks::queue_id.eq_any(queue_ids))
        .order((tasks::queue_id, tasks::position))
        .select(TaskRow::as_select())
        .load(conn)?)
}

fn cases_by_task(
    conn: &mut DbConnection,
    task_ids: &[&str],
) -> StoreResult<HashMap<String, Vec<TestCaseRow>>> {
    let rows = if let [task_id] = task_ids {
        test_cases::table
            .filter(test_cases::task_id.eq(task_id))
            .order(test_cases::id)
            .select(TestCaseRow::as_select())
            .load(conn)?
    } else {
        test_cases::table
            .filter(test_cases::task_id.eq_any(task_ids))
            .order(test_cases::id)
            .select(TestCaseRow::as_select())
            .load(conn)?
    };
    let mut by_task: HashMap<String, Vec<TestCaseRow>> = HashMap::new();
    for row in rows {
        by_task.entry(row.task_id.clone()).or_default().push(row);
    }
    Ok(by_task)
}

/// One task with its test cases.
pub fn get_task(
    conn: &mut DbConnection,
    id: &str,
) -> StoreResult<Option<(TaskRow, Vec<TestCaseRow>)>> {
    super::snapshot(conn, |conn| {
        let Some(task) = tasks::table
            .find(id)
            .select(TaskRow::as_select())
            .get_result(conn)
            .optional()?
        else {
            return Ok(None);
        };
        let cases = cases_by_task(conn, &[id])?.remove(id).unwrap_or_default();
        Ok(Some((task, cases)))
    })
}

/// A page of queues, newest first. Pages follow `seq`, which only grows, so
/// queues created while a client pages are neither skipped nor repeated.
pub fn list_queues(conn: &mut DbConnection, filter: &QueueFilter) -> StoreResult<QueuePage> {
    let limit = filter.limit.clamp(1, MAX_PAGE);
    let mut query = queues::table.select(QueueRow::as_select()).into_boxed();
    if let Some(status) = filter.status {
        query = query.filter(queues::status.eq(status.as_str()));
    }
    if let Some(owner) = &filter.owner {
        query = query.filter(queues::owner.eq(owner));
    }
    if let Some(branch) = &filter.branch {
        query = query.filter(queues::branch.eq(branch));
    }
    if let Some(before) = filter.before {
        query = query.filter(queues::seq.lt(before));
    }
    let mut items: Vec<QueueRow> = query
        .order(queues::seq.desc())
        .limit(limit + 1)
        .load(conn)?;
    let next = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(|q| q.seq)
    } else {
        None
    };
    Ok(QueuePage { items, next })
}

/// A waiting queue's place in line (1 = next to run), `None` otherwise (a
/// queue that is not waiting, or no longer exists).
pub fn queue_position(conn: &mut DbConnection, id: &str) -> StoreResult<Option<i64>> {
    match get_queue(conn, id)? {
        Some(q) => position_of(conn, &q),
        None => Ok(None),
    }
}

/// [`queue_position`] of a queue already read.
pub fn position_of(conn: &mut DbConnection, q: &QueueRow) -> StoreResult<Option<i64>> {
    if q.status() != Status::Waiting {
        return Ok(None);
    }
    let ahead: i64 = queues::table
        .filter(queues::status.eq(Status::Waiting.as_str()))
        .filter(
            queues::priority
                .gt(q.priority)
                .or(queues::priority.eq(q.priority).and(queues::seq.lt(q.seq))),
        )
        .select(count_star())
        .get_result(conn)?;
    Ok(Some(ahead + 1))
}

/// The places in line of these queues (1 = next to run), in one query
/// however many there are; queues that are not waiting are left out.
pub fn queue_positions(conn: &mut DbConnection, ids: &[&str]) -> StoreResult<HashMap<String, i64>> {
    #[derive(QueryableByName)]
    struct Place {
        #[diesel(sql_type = diesel::sql_types::Text)]
        id: String,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        position: i64,
    }
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    // The claim's order (highest priority, then oldest), numbered once.
    let mut query = diesel::sql_query(
        "SELECT id, position FROM (SELECT id, ROW_NUMBER() OVER \
         (ORDER BY priority DESC, seq ASC) AS position FROM queues WHERE status = 'waiting') \
         AS waiting WHERE id IN (",
    )
    .into_boxed();
    for (i, id) in ids.iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        query = query
            .sql(format!("{sep}${}", i + 1))
            .bind::<diesel::sql_types::Text, _>(*id);
    }
    let places: Vec<Place> = query.sql(")").load(conn)?;
    Ok(places.into_iter().map(|p| (p.id, p.position)).collect())
}

/// Queues by status, for metrics.
pub fn count_by_status(conn: &mut DbConnection) -> StoreResult<Vec<(Status, i64)>> {
    let rows: Vec<(String, i64)> = queues::table
        .group_by(queues::status)
        .select((queues::status, count_star()))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(s, n)| s.parse().ok().map(|s| (s, n)))
        .collect())
}

/// Claims the next waiting QEMU queue for `worker_id` (a worker without
/// boards): [`claim_with_boards`] with none.
pub fn claim_next(conn: &mut DbConnection, worker_id: &str) -> StoreResult<Option<QueueRow>> {
    claim_with_boards(conn, worker_id, &[])
}

/// Claims the next waiting queue for `worker_id`, highest priority first,
/// then oldest: a QEMU queue, or a board queue that one of `boards` (the
/// worker's boards) can take, leasing that board in the same transaction
/// (DESIGN section 10). Without boards it is one `UPDATE ... WHERE seq =
/// (SELECT ...) RETURNING`, so two workers can never claim the same queue.
pub fn claim_with_boards(
    conn: &mut DbConnection,
    worker_id: &str,
    boards: &[String],
) -> StoreResult<Option<QueueRow>> {
    if boards.is_empty() {
        return claim_qemu(conn, worker_id);
    }
    crate::db::write(conn, |conn| {
        let head: Option<(i32, i32)> = queues::table
            .filter(queues::status.eq(Status::Waiting.as_str()))
            .filter(queues::board.is_null())
            .order((queues::priority.desc(), queues::seq.asc()))
            .select((queues::priority, queues::seq))
            .limit(1)
            .get_result(conn)
            .optional()?;
        let Some((seq, board)) = super::boards::pick(conn, worker_id, boards, head)? else {
            return claim_qemu(conn, worker_id);
        };
        let to = transition(Kind::Queue, Status::Waiting, Status::Running)?;
        let started = crate::db::db_now(conn)?;
        let row = per_backend!(conn, |c| diesel::update(
            queues::table.filter(queues::seq.eq(seq))
        )
        .filter(queues::status.eq(Status::Waiting.as_str()))
        .set((
            queues::status.eq(to.as_str()),
            queues::worker_id.eq(worker_id),
            queues::started_at.eq(started),
            queues::ran_on.eq(&board),
        ))
        .returning(QueueRow::as_returning())
        .get_result(c))?;
        super::boards::lease(conn, &board, &row.id)?;
        Ok(Some(row))
    })
}

fn claim_qemu(conn: &mut DbConnection, worker_id: &str) -> StoreResult<Option<QueueRow>> {
    let to = transition(Kind::Queue, Status::Waiting, Status::Running)?;
    // The database's clock: a lost queue is one started before its worker
    // registered again, and registration is on that clock too.
    let started = crate::db::db_now(conn)?;
    let claim = (
        queues::status.eq(to.as_str()),
        queues::worker_id.eq(worker_id),
        queues::started_at.eq(started),
        queues::ran_on.eq("qemu"),
    );
    let waiting = || {
        queues::table
            .filter(queues::status.eq(Status::Waiting.as_str()))
            .filter(queues::board.is_null())
            .order((queues::priority.desc(), queues::seq.asc()))
            .select(queues::seq)
            .limit(1)
    };
    match conn {
        // One statement: SQLite runs one writer at a time, so two workers
        // can never claim the same queue.
        DbConnection::Sqlite(c) => {
            // The subquery reads the table the update writes: SQL needs it aliased.
            let w = diesel::alias!(queues as waiting);
            let next = w
                .filter(w.field(queues::status).eq(Status::Waiting.as_str()))
                .filter(w.field(queues::board).is_null())
                .order((w.field(queues::priority).desc(), w.field(queues::seq).asc()))
                .select(w.field(queues::seq))
                .limit(1);
            Ok(diesel::update(queues::table)
                .filter(queues::seq.eq_any(next))
                .filter(queues::status.eq(Status::Waiting.as_str()))
                .set(claim)
                .returning(QueueRow::as_returning())
                .get_result(c)
                .optional()?)
        }
        // The head row locked with SKIP LOCKED: workers claiming at the
        // same moment each take a different queue instead of waiting for
        // one another. Any other change of a waiting queue locks its row
        // first ([`require_queue`]), so it waits for the claim or the claim
        // skips it.
        DbConnection::Postgresql(c) => c.transaction(|c| {
            let Some(seq) = waiting()
                .for_update()
                .skip_locked()
                .get_result::<i32>(c)
                .optional()?
            else {
                return Ok(None);
            };
            Ok(diesel::update(queues::table.filter(queues::seq.eq(seq)))
                .set(claim)
                .returning(QueueRow::as_returning())
                .get_result(c)
                .optional()?)
        }),
    }
}

/// Asks for a queue to stop, if `by` may: a waiting queue is aborted at
/// once (its tasks become `skipped`); a running one gets `abort_reason`,
/// which its worker polls; a second request keeps the first reason. The
/// queue is read once, in the transaction that writes.
pub fn request_abort(
    conn: &mut DbConnection,
    id: &str,
    reason: &str,
    by: Actor<'_>,
) -> StoreResult<AbortOutcome> {
    crate::db::write(conn, |conn| {
        let q = require_queue(conn, id)?;
        by.may_change(&q)?;
        match q.status() {
            Status::Waiting => {
                let row = finish_queue_in(conn, q, Status::Aborted, reason)?;
                Ok(AbortOutcome::Aborted(detail_of(conn, row)?))
            }
            Status::Running => {
                let row = per_backend!(conn, |c| diesel::update(
                    queues::table.filter(queues::id.eq(id))
                )
                .set(queues::abort_reason.eq(q.abort_reason.as_deref().unwrap_or(reason)))
                .returning(QueueRow::as_returning())
                .get_result(c))?;
                Ok(AbortOutcome::Requested(detail_of(conn, row)?))
            }
            _ => Ok(AbortOutcome::AlreadyFinal(q)),
        }
    })
}

/// The abort requested of a running queue, if any: what the worker polls.
pub fn abort_reason(conn: &mut DbConnection, id: &str) -> StoreResult<Option<String>> {
    Ok(queues::table
        .filter(queues::id.eq(id))
        .select(queues::abort_reason)
        .get_result::<Option<String>>(conn)
        .optional()?
        .flatten())
}

/// Records the commit a running queue's branch resolved to.
pub fn set_commit(conn: &mut DbConnection, id: &str, sha: &str) -> StoreResult<()> {
    let n = diesel::update(queues::table.filter(queues::id.eq(id)))
        .set(queues::commit_sha.eq(sha))
        .execute(conn)?;
    found(n, "queue", id)
}

/// Records (or clears) the process group a queue's current child runs in.
pub fn set_pgid(conn: &mut DbConnection, id: &str, pgid: Option<i32>) -> StoreResult<()> {
    let n = diesel::update(queues::table.filter(queues::id.eq(id)))
        .set(queues::pgid.eq(pgid))
        .execute(conn)?;
    found(n, "queue", id)
}

fn found(rows: usize, what: &'static str, id: &str) -> StoreResult<()> {
    if rows == 0 {
        Err(StoreError::not_found(what, id))
    } else {
        Ok(())
    }
}

/// Ends a queue: `running` → a final status (or `waiting` → `aborted`).
/// Tasks that are still running end with the same status and reason; tasks
/// never reached become `skipped`.
pub fn finish_queue(
    conn: &mut DbConnection,
    id: &str,
    to: Status,
    reason: &str,
) -> StoreResult<QueueRow> {
    crate::db::write(conn, |conn| {
        let q = require_queue(conn, id)?;
        finish_queue_in(conn, q, to, reason)
    })
}

pub(super) fn finish_queue_in(
    conn: &mut DbConnection,
    q: QueueRow,
    to: Status,
    reason: &str,
) -> StoreResult<QueueRow> {
    let to = transition(Kind::Queue, q.status(), to)?;
    let at = now();
    let reason = (!reason.is_empty()).then_some(reason);
    for task in tasks_of(conn, &[q.id.as_str()])? {
        let task_to = match task.status() {
            Status::Waiting => Status::Skipped,
            Status::Running => to,
            _ => continue,
        };
        let task_reason = match task_to {
            Status::Skipped => Some("not reached"),
            _ => reason,
        };
        set_task_status(conn, &task, task_to, task_reason, at)?;
    }
    // The board goes back in the transaction that records the end.
    super::boards::release(conn, &q, to)?;
    Ok(per_backend!(conn, |c| diesel::update(
        queues::table.filter(queues::id.eq(&q.id))
    )
    .set((
        queues::status.eq(to.as_str()),
        queues::status_reason.eq(reason),
        queues::finished_at.eq(at),
        queues::pgid.eq(None::<i32>),
    ))
    .returning(QueueRow::as_returning())
    .get_result(c))?)
}

fn set_task_status(
    conn: &mut DbConnection,
    task: &TaskRow,
    to: Status,
    reason: Option<&str>,
    at: NaiveDateTime,
) -> StoreResult<TaskRow> {
    let to = transition(Kind::Task, task.status(), to)?;
    let (started, finished) = if to == Status::Running {
        (Some(at), None)
    } else {
        (task.started_at, Some(at))
    };
    Ok(per_backend!(conn, |c| diesel::update(
        tasks::table.find(&task.id)
    )
    .set((
        tasks::status.eq(to.as_str()),
        tasks::status_reason.eq(reason),
        tasks::started_at.eq(started),
        tasks::finished_at.eq(finished),
    ))
    .returning(TaskRow::as_returning())
    .get_result(c))?)
}

/// Moves a task to `to` through the status machine (`waiting` → `running`
/// when the worker starts it, `running` → a final status when it ends).
pub fn set_task(
    conn: &mut DbConnection,
    task_id: &str,
    to: Status,
    reason: Option<&str>,
) -> StoreResult<TaskRow> {
    crate::db::write(conn, |conn| {
        let task = tasks::table
            .find(task_id)
            .select(TaskRow::as_select())
            .get_result(conn)
            .optional()?
            .ok_or_else(|| StoreError::not_found("task", task_id))?;
        set_task_status(conn, &task, to, reason, now())
    })
}

/// Records one test result (a scenario's `<test>` or a Unity case) and
/// updates the task's counters. Recording the same name again replaces it.
pub fn record_test_case(
    conn: &mut DbConnection,
    task_id: &str,
    case: &NewTestCase,
) -> StoreResult<()> {
    let status = match case.status {
        s @ (Status::Passed | Status::Failed | Status::Error | Status::Skipped) => s,
        other => {
            return Err(StoreError::Conflict(format!(
                "a test case cannot be {other}"
            )));
        }
    };
    let duration = case
        .duration_ms
        .map(|ms| i32::try_from(ms).unwrap_or(i32::MAX));
    crate::db::write(conn, |conn| {
        per_backend!(conn, |c| diesel::insert_into(test_cases::table)
            .values((
                test_cases::task_id.eq(task_id),
                test_cases::name.eq(&case.name),
                test_cases::status.eq(status.as_str()),
                test_cases::duration_ms.eq(duration),
                test_cases::message.eq(&case.message),
            ))
            .on_conflict((test_cases::task_id, test_cases::name))
            .do_update()
            .set((
                test_cases::status.eq(status.as_str()),
                test_cases::duration_ms.eq(duration),
                test_cases::message.eq(&case.message),
            ))
            .execute(c))
        .map_err(|e| match e {
            diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::ForeignKeyViolation,
                _,
            ) => StoreError::not_found("task", task_id),
            other => other.into(),
        })?;
        diesel::sql_query(
            "UPDATE tasks SET \
               passed  = (SELECT count(*) FROM test_cases WHERE task_id = $1 AND status = 'passed'), \
               failed  = (SELECT count(*) FROM test_cases WHERE task_id = $1 AND status IN ('failed', 'error')), \
               skipped = (SELECT count(*) FROM test_cases WHERE task_id = $1 AND status = 'skipped') \
             WHERE id = $1",
        )
        .bind::<diesel::sql_types::Text, _>(task_id)
        .execute(conn)?;
        Ok(())
    })
}

/// Deletes a queue with its tasks and test cases, if `by` may. A running
/// queue is a [`StoreError::Conflict`]: abort it first. Returns the deleted
/// row so the caller can remove `queues/<id>/`.
pub fn delete_queue(conn: &mut DbConnection, id: &str, by: Actor<'_>) -> StoreResult<QueueRow> {
    crate::db::write(conn, |conn| {
        let q = require_queue(conn, id)?;
        by.may_change(&q)?;
        if q.status() == Status::Running {
            return Err(StoreError::Conflict(format!(
                "queue {id:?} is running: abort it first"
            )));
        }
        diesel::delete(queues::table.filter(queues::id.eq(id))).execute(conn)?;
        Ok(q)
    })
}

/// Running queues of a worker.
pub fn running_queues(conn: &mut DbConnection, worker_id: &str) -> StoreResult<Vec<QueueRow>> {
    Ok(queues::table
        .filter(queues::status.eq(Status::Running.as_str()))
        .filter(queues::worker_id.eq(worker_id))
        .order(queues::seq)
        .select(QueueRow::as_select())
        .load(conn)?)
}

/// Count and total run time of finished queues and recorded tests, by
/// status, for metrics.
#[derive(Debug, Clone, PartialEq, diesel::QueryableByName)]
pub struct DurationStat {
    /// `queue` or `test`.
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub kind: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub status: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub count: i64,
    #[diesel(sql_type = diesel::sql_types::Double)]
    pub sum_s: f64,
}

pub fn duration_stats(conn: &mut DbConnection) -> StoreResult<Vec<DurationStat>> {
    // Seconds between two timestamps: the one expression the backends spell differently.
    let seconds = if conn.is_postgres() {
        "EXTRACT(EPOCH FROM finished_at - started_at)"
    } else {
        "(julianday(finished_at) - julianday(started_at)) * 86400.0"
    };
    Ok(diesel::sql_query(format!(
        "SELECT CAST('queue' AS TEXT) AS kind, status, count(*) AS count, \
                CAST(coalesce(sum({seconds}), 0.0) AS DOUBLE PRECISION) AS sum_s \
           FROM queues WHERE finished_at IS NOT NULL AND started_at IS NOT NULL GROUP BY status \
         UNION ALL \
         SELECT 'test', status, count(*), CAST(coalesce(sum(duration_ms) / 1000.0, 0.0) AS DOUBLE PRECISION) \
           FROM test_cases WHERE duration_ms IS NOT NULL GROUP BY status"
    ))
    .load(conn)?)
}
