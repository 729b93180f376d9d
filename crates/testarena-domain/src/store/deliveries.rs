//! Forges (DESIGN section 12): the hooks received, the outbox of status
//! changes, and the deliveries (commit statuses and notifications) the
//! app's sender works through.
//!
//! - A hook is recorded in the same transaction as the queues it made
//!   ([`record_hook`]), under its forge delivery id, which is unique per
//!   repository: a redelivery finds the first record ([`find_hook`]) and
//!   makes nothing.
//! - Every status change of a queue (but back to `waiting`) adds a row to
//!   `delivery_events`, written by a trigger in the same statement as the
//!   change, whichever store function makes it (a claim, an end, an abort,
//!   a lost worker). The app turns each into deliveries and removes it in
//!   one transaction ([`expand_event`]), so a change is neither lost nor
//!   delivered twice across a restart. [`note_board_bad`] adds one for a
//!   board whose health check failed.
//! - A delivery is leased before it is sent ([`lease_delivery`]: its next
//!   try moves past the send's timeout), so a crash mid-send only delays
//!   it; [`record_attempt`] stores the answer and what comes next.

use crate::db::DbConnection;
use chrono::NaiveDateTime;
use diesel::dsl::count_star;
use diesel::prelude::*;

use super::queues::create_queue_in;
use super::{StoreError, StoreResult, conflict_on_unique, now};
use crate::models::{NewQueue, NewTask, QueueRow};
use crate::schema::{deliveries, delivery_events, hook_deliveries, queues};

/// A hook received and what came of it.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = hook_deliveries, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct HookRow {
    pub id: i32,
    pub repo: String,
    pub delivery_id: String,
    pub forge: String,
    pub event: String,
    pub branch: Option<String>,
    pub commit_sha: Option<String>,
    pub pusher: Option<String>,
    /// JSON array of the queue ids it made.
    pub queues: String,
    /// `started`, `ignored` or `error`.
    pub outcome: String,
    pub reason: Option<String>,
    pub received_at: NaiveDateTime,
}

impl HookRow {
    /// The ids of the queues it made.
    pub fn queue_ids(&self) -> Vec<String> {
        serde_json::from_str(&self.queues).unwrap_or_default()
    }
}

/// A hook to record (its queues are given separately).
#[derive(Debug, Clone, PartialEq, Insertable)]
#[diesel(table_name = hook_deliveries)]
pub struct NewHook {
    pub repo: String,
    pub delivery_id: String,
    pub forge: String,
    pub event: String,
    pub branch: Option<String>,
    pub commit_sha: Option<String>,
    pub pusher: Option<String>,
    pub outcome: String,
    pub reason: Option<String>,
    pub received_at: NaiveDateTime,
}

/// A commit status or notification to send, or being sent.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = deliveries, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct DeliveryRow {
    pub id: i32,
    /// `status` or `notify`.
    pub kind: String,
    /// A status's state (`pending`, `success`, ...), a notification's event.
    pub event: String,
    pub queue_id: Option<String>,
    pub hook_id: Option<i32>,
    pub forge: Option<String>,
    /// The environment variable of the token or signing secret.
    pub auth_env: Option<String>,
    pub context: Option<String>,
    pub target_url: String,
    pub payload: String,
    /// `pending`, `delivered`, `failed` or `superseded`.
    pub state: String,
    pub attempts: i32,
    pub last_code: Option<i32>,
    pub last_answer: Option<String>,
    pub last_error: Option<String>,
    pub next_try_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// A delivery to store.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewDelivery {
    pub kind: String,
    pub event: String,
    pub queue_id: Option<String>,
    pub forge: Option<String>,
    pub auth_env: Option<String>,
    pub context: Option<String>,
    pub target_url: String,
    pub payload: String,
}

/// A status change (or a bad board) not yet turned into deliveries.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = delivery_events, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct EventRow {
    pub id: i32,
    /// `queue.status` or `board.bad`.
    pub event: String,
    /// The queue's id or the board's.
    pub subject: String,
    /// The queue's new status; for `board.bad`, the reason.
    pub status: String,
    pub at: NaiveDateTime,
}

/// What one try of a delivery came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryAttempt {
    /// `delivered`, `failed`, or `pending` (tried again at `next_try_at`).
    pub state: &'static str,
    pub code: Option<i32>,
    pub answer: Option<String>,
    pub error: Option<String>,
    pub next_try_at: NaiveDateTime,
}

/// The hook of `repo` with this delivery id, if one was recorded.
pub fn find_hook(
    conn: &mut DbConnection,
    repo: &str,
    delivery_id: &str,
) -> StoreResult<Option<HookRow>> {
    Ok(hook_deliveries::table
        .filter(hook_deliveries::repo.eq(repo))
        .filter(hook_deliveries::delivery_id.eq(delivery_id))
        .select(HookRow::as_select())
        .get_result(conn)
        .optional()?)
}

/// Records a hook with the queues it made (owned by the system user, with
/// `triggered_by` the pusher) and the deliveries it asks for (an `error`
/// status for a bad `.testarena.toml`), all in one transaction. A delivery
/// id recorded already is a [`StoreError::Conflict`] and nothing is stored;
/// so is a queue or task id that is taken.
pub fn record_hook(
    conn: &mut DbConnection,
    hook: &NewHook,
    made: &[(NewQueue, Vec<NewTask>)],
    triggered_by: Option<&str>,
    to_send: &[NewDelivery],
) -> StoreResult<(HookRow, Vec<QueueRow>)> {
    crate::db::write(conn, |conn| {
        let ids: Vec<&str> = made.iter().map(|(q, _)| q.id.as_str()).collect();
        let queues_json = serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into());
        let row = per_backend!(conn, |c| diesel::insert_into(hook_deliveries::table)
            .values((hook, hook_deliveries::queues.eq(&queues_json)))
            .returning(HookRow::as_returning())
            .get_result(c))
        .map_err(|e| {
            conflict_on_unique(e, || {
                format!("delivery {:?} was received already", hook.delivery_id)
            })
        })?;
        let mut rows = Vec::with_capacity(made.len());
        for (queue, tasks) in made {
            create_queue_in(conn, queue, tasks)?;
            let q = per_backend!(conn, |c| diesel::update(
                queues::table.filter(queues::id.eq(&queue.id))
            )
            .set(queues::triggered_by.eq(triggered_by))
            .returning(QueueRow::as_returning())
            .get_result(c))?;
            rows.push(q);
        }
        insert_in(conn, to_send, Some(row.id))?;
        Ok((row, rows))
    })
}

/// The hooks of `repo`, newest first, at most `limit`.
pub fn list_hooks(conn: &mut DbConnection, repo: &str, limit: i64) -> StoreResult<Vec<HookRow>> {
    Ok(hook_deliveries::table
        .filter(hook_deliveries::repo.eq(repo))
        .order(hook_deliveries::id.desc())
        .limit(limit.clamp(1, 200))
        .select(HookRow::as_select())
        .load(conn)?)
}

fn insert_in(
    conn: &mut DbConnection,
    items: &[NewDelivery],
    hook_id: Option<i32>,
) -> StoreResult<()> {
    let at = now();
    for d in items {
        let id: i32 = diesel::insert_into(deliveries::table)
            .values((
                deliveries::kind.eq(&d.kind),
                deliveries::event.eq(&d.event),
                deliveries::queue_id.eq(&d.queue_id),
                deliveries::hook_id.eq(hook_id),
                deliveries::forge.eq(&d.forge),
                deliveries::auth_env.eq(&d.auth_env),
                deliveries::context.eq(&d.context),
                deliveries::target_url.eq(&d.target_url),
                deliveries::payload.eq(&d.payload),
                deliveries::next_try_at.eq(at),
                deliveries::created_at.eq(at),
                deliveries::updated_at.eq(at),
            ))
            .returning(deliveries::id)
            .get_result(conn)?;
        // A newer status of the same commit and context makes an older
        // one that is still waiting pointless: the forge shows the last.
        if d.kind == "status" {
            diesel::update(
                deliveries::table
                    .filter(deliveries::kind.eq("status"))
                    .filter(deliveries::state.eq("pending"))
                    .filter(deliveries::target_url.eq(&d.target_url))
                    .filter(deliveries::context.eq(&d.context))
                    .filter(deliveries::id.lt(id)),
            )
            .set((
                deliveries::state.eq("superseded"),
                deliveries::updated_at.eq(at),
            ))
            .execute(conn)?;
        }
    }
    Ok(())
}

/// Stores deliveries that no event or hook made (a test's, a tool's).
pub fn insert_deliveries(conn: &mut DbConnection, items: &[NewDelivery]) -> StoreResult<()> {
    crate::db::write(conn, |conn| insert_in(conn, items, None))
}

/// The oldest events not yet expanded, at most `limit`.
pub fn pending_events(conn: &mut DbConnection, limit: i64) -> StoreResult<Vec<EventRow>> {
    Ok(delivery_events::table
        .order(delivery_events::id)
        .limit(limit)
        .select(EventRow::as_select())
        .load(conn)?)
}

/// Stores the deliveries an event calls for and removes the event, in one
/// transaction. An event removed meanwhile (another app) stores nothing.
pub fn expand_event(
    conn: &mut DbConnection,
    event_id: i32,
    items: &[NewDelivery],
) -> StoreResult<bool> {
    crate::db::write(conn, |conn| {
        let gone = diesel::delete(delivery_events::table.find(event_id)).execute(conn)?;
        if gone == 0 {
            return Ok(false);
        }
        insert_in(conn, items, None)?;
        Ok(true)
    })
}

/// Records that board `board_id` went bad (its health check failed), for
/// the `board.bad` notifications.
pub fn note_board_bad(conn: &mut DbConnection, board_id: &str, reason: &str) -> StoreResult<()> {
    diesel::insert_into(delivery_events::table)
        .values((
            delivery_events::event.eq("board.bad"),
            delivery_events::subject.eq(board_id),
            delivery_events::status.eq(reason),
            delivery_events::at.eq(now()),
        ))
        .execute(conn)?;
    Ok(())
}

/// Deliveries waiting whose next try is due by `at`, oldest first.
pub fn due_deliveries(
    conn: &mut DbConnection,
    at: NaiveDateTime,
    limit: i64,
) -> StoreResult<Vec<DeliveryRow>> {
    Ok(deliveries::table
        .filter(deliveries::state.eq("pending"))
        .filter(deliveries::next_try_at.le(at))
        .order(deliveries::id)
        .limit(limit)
        .select(DeliveryRow::as_select())
        .load(conn)?)
}

/// When the next delivery is due, if any waits.
pub fn next_due(conn: &mut DbConnection) -> StoreResult<Option<NaiveDateTime>> {
    Ok(deliveries::table
        .filter(deliveries::state.eq("pending"))
        .select(diesel::dsl::min(deliveries::next_try_at))
        .get_result(conn)?)
}

/// Takes a due delivery for one send: moves its next try to `until` (past
/// the send's timeout), so no one else sends it meanwhile and a crash only
/// delays it. `None` when it is no longer waiting or not due.
pub fn lease_delivery(
    conn: &mut DbConnection,
    id: i32,
    until: NaiveDateTime,
) -> StoreResult<Option<DeliveryRow>> {
    let at = now();
    Ok(per_backend!(conn, |c| diesel::update(
        deliveries::table
            .filter(deliveries::id.eq(id))
            .filter(deliveries::state.eq("pending"))
            .filter(deliveries::next_try_at.le(at)),
    )
    .set(deliveries::next_try_at.eq(until))
    .returning(DeliveryRow::as_returning())
    .get_result(c))
    .optional()?)
}

/// Stores one try's answer and what comes next. A delivery superseded
/// while it was sent keeps that state, with the answer.
pub fn record_attempt(
    conn: &mut DbConnection,
    id: i32,
    a: &DeliveryAttempt,
) -> StoreResult<DeliveryRow> {
    crate::db::write(conn, |conn| {
        let row: DeliveryRow = deliveries::table
            .find(id)
            .select(DeliveryRow::as_select())
            .get_result(conn)
            .optional()?
            .ok_or_else(|| StoreError::not_found("delivery", id.to_string()))?;
        let state = if row.state == "pending" {
            a.state
        } else {
            row.state.as_str()
        };
        Ok(per_backend!(conn, |c| diesel::update(
            deliveries::table.find(id)
        )
        .set((
            deliveries::state.eq(state),
            deliveries::attempts.eq(row.attempts + 1),
            deliveries::last_code.eq(a.code),
            deliveries::last_answer.eq(&a.answer),
            deliveries::last_error.eq(&a.error),
            deliveries::next_try_at.eq(a.next_try_at),
            deliveries::updated_at.eq(now()),
        ))
        .returning(DeliveryRow::as_returning())
        .get_result(c))?)
    })
}

/// The deliveries of a queue, oldest first.
pub fn queue_deliveries(conn: &mut DbConnection, queue_id: &str) -> StoreResult<Vec<DeliveryRow>> {
    Ok(deliveries::table
        .filter(deliveries::queue_id.eq(queue_id))
        .order(deliveries::id)
        .select(DeliveryRow::as_select())
        .load(conn)?)
}

/// The deliveries a hook made itself (an `error` status), oldest first.
pub fn hook_sent(conn: &mut DbConnection, hook_id: i32) -> StoreResult<Vec<DeliveryRow>> {
    Ok(deliveries::table
        .filter(deliveries::hook_id.eq(hook_id))
        .order(deliveries::id)
        .select(DeliveryRow::as_select())
        .load(conn)?)
}

/// Deliveries by kind and state, for metrics.
pub fn delivery_counts(conn: &mut DbConnection) -> StoreResult<Vec<(String, String, i64)>> {
    Ok(deliveries::table
        .group_by((deliveries::kind, deliveries::state))
        .select((deliveries::kind, deliveries::state, count_star()))
        .order((deliveries::kind, deliveries::state))
        .load(conn)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::Status;
    use crate::store;

    fn db() -> (tempfile::TempDir, crate::db::DbPool) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let pool =
            crate::db::open_sqlite(&dir.path().join("t.db"), 2).unwrap_or_else(|e| panic!("{e}"));
        (dir, pool)
    }

    fn queue(id: &str) -> (NewQueue, Vec<NewTask>) {
        let q = NewQueue {
            id: id.into(),
            repo: "firmware".into(),
            branch: "main".into(),
            commit_sha: Some("0123456789abcdef0123456789abcdef01234567".into()),
            target: "t".into(),
            owner: crate::validate::SYSTEM_USER.into(),
            priority: 0,
            timeout_s: None,
            created_at: now(),
            no_cache: false,
        };
        let t = NewTask {
            id: format!("{id}.1"),
            scenario: "s.xml".into(),
            ..NewTask::default()
        };
        (q, vec![t])
    }

    fn hook(id: &str) -> NewHook {
        NewHook {
            repo: "firmware".into(),
            delivery_id: id.into(),
            forge: "gitea".into(),
            event: "push".into(),
            branch: Some("main".into()),
            commit_sha: None,
            pusher: Some("ann".into()),
            outcome: "started".into(),
            reason: None,
            received_at: now(),
        }
    }

    fn status(state: &str, context: &str) -> NewDelivery {
        NewDelivery {
            kind: "status".into(),
            event: state.into(),
            forge: Some("gitea".into()),
            context: Some(context.into()),
            target_url: "http://127.0.0.1:9/statuses/x".into(),
            payload: "{}".into(),
            ..NewDelivery::default()
        }
    }

    #[test]
    fn a_hook_and_its_queues_are_one_transaction_and_its_id_is_unique() {
        let (_dir, pool) = db();
        let mut conn = pool.get().unwrap_or_else(|e| panic!("{e}"));
        let (row, queues) = record_hook(&mut conn, &hook("d1"), &[queue("q1")], Some("ann"), &[])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(row.queue_ids(), ["q1"]);
        assert_eq!(queues[0].triggered_by.as_deref(), Some("ann"));
        // The same delivery id again: a conflict, and its queue is not stored.
        let again = record_hook(&mut conn, &hook("d1"), &[queue("q2")], None, &[]);
        assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
        assert!(
            store::get_queue(&mut conn, "q2")
                .unwrap_or_default()
                .is_none()
        );
        // A taken queue id: nothing of the second hook is stored.
        let taken = record_hook(
            &mut conn,
            &hook("d2"),
            &[queue("q1")],
            None,
            &[status("error", "testarena")],
        );
        assert!(matches!(taken, Err(StoreError::Conflict(_))));
        assert!(
            find_hook(&mut conn, "firmware", "d2")
                .unwrap_or_default()
                .is_none()
        );
        assert_eq!(delivery_counts(&mut conn).unwrap_or_default(), []);
    }

    #[test]
    fn status_changes_are_recorded_in_the_statement_that_makes_them() {
        let (_dir, pool) = db();
        let mut conn = pool.get().unwrap_or_else(|e| panic!("{e}"));
        record_hook(&mut conn, &hook("d1"), &[queue("q1")], None, &[])
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            pending_events(&mut conn, 10).unwrap_or_default().is_empty(),
            "a new queue is no change"
        );
        store::claim_next(&mut conn, "w1").unwrap_or_else(|e| panic!("{e}"));
        store::finish_queue(&mut conn, "q1", Status::Passed, "").unwrap_or_else(|e| panic!("{e}"));
        let events = pending_events(&mut conn, 10).unwrap_or_default();
        let seen: Vec<(&str, &str)> = events
            .iter()
            .map(|e| (e.subject.as_str(), e.status.as_str()))
            .collect();
        assert_eq!(seen, [("q1", "running"), ("q1", "passed")]);
        // Expanding removes the event with its deliveries; a second time does nothing.
        assert!(
            expand_event(&mut conn, events[0].id, &[status("pending", "testarena")])
                .unwrap_or_default()
        );
        assert!(
            !expand_event(&mut conn, events[0].id, &[status("pending", "testarena")])
                .unwrap_or(true)
        );
        assert_eq!(pending_events(&mut conn, 10).unwrap_or_default().len(), 1);
        note_board_bad(&mut conn, "bench-1", "health check failed")
            .unwrap_or_else(|e| panic!("{e}"));
        let last = pending_events(&mut conn, 10).unwrap_or_default().pop();
        assert_eq!(
            last.map(|e| (e.event, e.subject)),
            Some(("board.bad".into(), "bench-1".into()))
        );
    }

    #[test]
    fn a_newer_status_supersedes_and_a_lease_is_taken_once() {
        let (_dir, pool) = db();
        let mut conn = pool.get().unwrap_or_else(|e| panic!("{e}"));
        insert_deliveries(
            &mut conn,
            &[
                status("pending", "testarena"),
                status("pending", "testarena/s.xml"),
            ],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let due = due_deliveries(&mut conn, now(), 10).unwrap_or_default();
        assert_eq!(due.len(), 2);
        let until = now() + chrono::Duration::seconds(60);
        let leased = lease_delivery(&mut conn, due[0].id, until).unwrap_or_default();
        assert!(leased.is_some());
        assert!(
            lease_delivery(&mut conn, due[0].id, until)
                .unwrap_or_default()
                .is_none(),
            "taken once"
        );
        // The verdict comes while `pending` is in flight: it is superseded,
        // and its answer, when it comes, keeps it so.
        insert_deliveries(&mut conn, &[status("success", "testarena")])
            .unwrap_or_else(|e| panic!("{e}"));
        let answer = DeliveryAttempt {
            state: "delivered",
            code: Some(201),
            answer: None,
            error: None,
            next_try_at: now(),
        };
        let row = record_attempt(&mut conn, due[0].id, &answer).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (row.state.as_str(), row.attempts, row.last_code),
            ("superseded", 1, Some(201))
        );
        let counts = delivery_counts(&mut conn).unwrap_or_default();
        assert_eq!(
            counts,
            [
                ("status".to_owned(), "pending".to_owned(), 2),
                ("status".to_owned(), "superseded".to_owned(), 1)
            ]
        );
    }
}
