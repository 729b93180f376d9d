//! Boards (DESIGN section 10): registration by their worker, the lease a
//! claim takes and the end of a queue gives back, health, faults and
//! flashes, and what the API shows. The claim itself is
//! [`super::claim_with_boards`], which calls [`pick`] and [`lease`] in its
//! transaction; the end of a queue calls [`release`] in the transaction
//! that records it. This module reads the `queues` table but imports no
//! other store module.

use crate::db::DbConnection;
use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{StoreError, StoreResult, now};
use crate::models::QueueRow;
use crate::schema::{attempts, boards, queues, workers};
use crate::status::Status;
use crate::validate::SYSTEM_USER;
use testarena_wire::boards::{BoardHealth, BoardStatus};

/// A board's row.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = boards, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct BoardRow {
    pub id: String,
    pub worker_id: String,
    pub target: String,
    pub tags: String,
    pub serial: String,
    pub baud: i32,
    pub status: String,
    pub health: String,
    pub queue_id: Option<String>,
    pub leased_at: Option<NaiveDateTime>,
    pub heartbeat_at: NaiveDateTime,
    pub last_health_at: Option<NaiveDateTime>,
    pub last_health_queue: Option<String>,
    pub health_queue: Option<String>,
    pub health_repo: Option<String>,
    pub health_branch: Option<String>,
    pub health_scenario: Option<String>,
    pub health_every_h: Option<i32>,
    pub note: String,
    pub maintenance: bool,
    pub flashes: i32,
    pub faults: i32,
    pub registered_at: NaiveDateTime,
}

impl BoardRow {
    pub fn tags(&self) -> Vec<String> {
        split_tags(Some(&self.tags))
    }

    pub fn health(&self) -> BoardHealth {
        BoardHealth::parse(&self.health)
    }

    pub fn has_health_check(&self) -> bool {
        self.health_repo.is_some() && self.health_scenario.is_some()
    }

    /// The status shown: `offline` when its worker is not alive, then
    /// `busy` while leased, `maintenance`, `bad`, the stored status.
    pub fn shown_status(&self, worker_alive: bool) -> BoardStatus {
        if self.queue_id.is_some() {
            return BoardStatus::Busy;
        }
        if !worker_alive || self.status == "offline" {
            return BoardStatus::Offline;
        }
        if self.maintenance {
            return BoardStatus::Maintenance;
        }
        if self.health() == BoardHealth::Bad || self.status == "bad" {
            return BoardStatus::Bad;
        }
        BoardStatus::Idle
    }

    /// Whether a user queue (not a health check) may take it now, leaving
    /// its worker aside: free, present, not in maintenance, health `good`
    /// or `unknown`, and no health check due first (a board with a check
    /// configured and health `unknown` runs the check before anything else).
    fn takes_user_queues(&self) -> bool {
        self.queue_id.is_none()
            && self.status != "offline"
            && !self.maintenance
            && self.health() != BoardHealth::Bad
            && self.health_queue.is_none()
            && !(self.health() == BoardHealth::Unknown && self.has_health_check())
    }
}

/// Tags as stored (`a,b`) to a list; `None` or empty is no tags.
pub fn split_tags(tags: Option<&str>) -> Vec<String> {
    tags.unwrap_or_default()
        .split(',')
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Tags sorted, deduplicated and joined as stored; `None` for none.
pub fn join_tags(tags: &[String]) -> Option<String> {
    let mut tags: Vec<&str> = tags.iter().map(String::as_str).collect();
    tags.sort_unstable();
    tags.dedup();
    (!tags.is_empty()).then(|| tags.join(","))
}

/// A board as its worker registers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardRegistration {
    pub id: String,
    pub target: String,
    pub tags: Vec<String>,
    pub serial: String,
    pub baud: u32,
    /// Whether the serial device exists now.
    pub present: bool,
    /// `(repo, branch, scenario, every_h)` of its health check.
    pub health: Option<(String, String, String, u32)>,
}

/// Registers (or refreshes) a worker's boards in one transaction. A board
/// id that another live worker holds (its heartbeat newer than
/// `live_after`) is a [`StoreError::Conflict`] naming both workers, and
/// nothing is written.
pub fn register_boards(
    conn: &mut DbConnection,
    worker_id: &str,
    regs: &[BoardRegistration],
    live_after: NaiveDateTime,
) -> StoreResult<Vec<BoardRow>> {
    crate::db::write(conn, |conn| {
        let at = crate::db::db_now(conn)?;
        let mut rows = Vec::new();
        for reg in regs {
            let old: Option<BoardRow> = boards::table
                .find(&reg.id)
                .select(BoardRow::as_select())
                .get_result(conn)
                .optional()?;
            if let Some(old) = &old
                && old.worker_id != worker_id
                && worker_alive(conn, &old.worker_id, live_after)?
            {
                return Err(StoreError::Conflict(format!(
                    "board {:?} is held by worker {:?}; worker {:?} cannot register it",
                    reg.id, old.worker_id, worker_id
                )));
            }
            let tags = join_tags(&reg.tags).unwrap_or_default();
            let (hr, hb, hs, he) = match &reg.health {
                Some((r, b, s, e)) => (
                    Some(r.as_str()),
                    Some(b.as_str()),
                    Some(s.as_str()),
                    Some(i32::try_from(*e).unwrap_or(i32::MAX)),
                ),
                None => (None, None, None, None),
            };
            let baud = i32::try_from(reg.baud).unwrap_or(i32::MAX);
            let status = match (&old, reg.present) {
                (Some(o), _) if o.queue_id.is_some() => "busy",
                (Some(o), true) if o.health == "bad" => "bad",
                (_, true) => "idle",
                (_, false) => "offline",
            };
            let row = per_backend!(conn, |c| diesel::insert_into(boards::table)
                .values((
                    boards::id.eq(&reg.id),
                    boards::worker_id.eq(worker_id),
                    boards::target.eq(&reg.target),
                    boards::tags.eq(&tags),
                    boards::serial.eq(&reg.serial),
                    boards::baud.eq(baud),
                    boards::status.eq(status),
                    boards::heartbeat_at.eq(at),
                    boards::health_repo.eq(hr),
                    boards::health_branch.eq(hb),
                    boards::health_scenario.eq(hs),
                    boards::health_every_h.eq(he),
                    boards::registered_at.eq(at),
                ))
                .on_conflict(boards::id)
                .do_update()
                .set((
                    boards::worker_id.eq(worker_id),
                    boards::target.eq(&reg.target),
                    boards::tags.eq(&tags),
                    boards::serial.eq(&reg.serial),
                    boards::baud.eq(baud),
                    boards::status.eq(status),
                    boards::heartbeat_at.eq(at),
                    boards::health_repo.eq(hr),
                    boards::health_branch.eq(hb),
                    boards::health_scenario.eq(hs),
                    boards::health_every_h.eq(he),
                ))
                .returning(BoardRow::as_returning())
                .get_result(c))?;
            rows.push(row);
        }
        Ok(rows)
    })
}

fn worker_alive(
    conn: &mut DbConnection,
    worker_id: &str,
    live_after: NaiveDateTime,
) -> StoreResult<bool> {
    let seen: Option<NaiveDateTime> = workers::table
        .find(worker_id)
        .select(workers::last_seen)
        .get_result(conn)
        .optional()?;
    Ok(seen.is_some_and(|s| s >= live_after))
}

/// Chooses, for [`super::claim_with_boards`], the first waiting board
/// queue (highest priority, then oldest) that one of `offered` (this
/// worker's boards) can take, if it comes before `qemu_head` (the
/// `(priority, seq)` of the first waiting QEMU queue). Returns the queue's
/// `seq` and the board. Runs inside the claim's transaction.
pub fn pick(
    conn: &mut DbConnection,
    worker_id: &str,
    offered: &[String],
    qemu_head: Option<(i32, i32)>,
) -> StoreResult<Option<(i32, String)>> {
    let mine: Vec<BoardRow> = boards::table
        .filter(boards::worker_id.eq(worker_id))
        .filter(boards::queue_id.is_null())
        .filter(boards::id.eq_any(offered))
        .select(BoardRow::as_select())
        .load(conn)?;
    if mine.is_empty() {
        return Ok(None);
    }
    let mut waiting = queues::table
        .filter(queues::status.eq(Status::Waiting.as_str()))
        .filter(queues::board.is_not_null())
        .into_boxed();
    if let Some((priority, seq)) = qemu_head {
        waiting = waiting.filter(
            queues::priority
                .gt(priority)
                .or(queues::priority.eq(priority).and(queues::seq.lt(seq))),
        );
    }
    let candidates: Vec<QueueRow> = waiting
        .order((queues::priority.desc(), queues::seq.asc()))
        .limit(200)
        .select(QueueRow::as_select())
        .load(conn)?;
    for q in candidates {
        let tried: Vec<Option<String>> = if q.attempt > 1 {
            attempts::table
                .filter(attempts::queue_id.eq(&q.id))
                .select(attempts::ran_on)
                .load(conn)?
        } else {
            Vec::new()
        };
        let found = mine.iter().find(|b| {
            fits(b, &q) && (is_health_check(&q) || !tried.iter().flatten().any(|t| *t == b.id))
        });
        if let Some(board) = found {
            return Ok(Some((q.seq, board.id.clone())));
        }
    }
    Ok(None)
}

/// Whether `q` is a health check: the system user's queue pinned to a board.
pub fn is_health_check(q: &QueueRow) -> bool {
    q.owner == SYSTEM_USER && q.board.as_deref().is_some_and(|b| b != "any")
}

/// Whether board `b` can run `q` now (its worker aside).
fn fits(b: &BoardRow, q: &QueueRow) -> bool {
    if !matches_requirement(b, q) {
        return false;
    }
    if is_health_check(q) {
        // A health check runs on a bad board and one in maintenance: that
        // is how it comes back.
        b.queue_id.is_none() && b.status != "offline"
    } else {
        b.takes_user_queues()
    }
}

/// Target, board id (or `any`) and every asked tag.
fn matches_requirement(b: &BoardRow, q: &QueueRow) -> bool {
    let tags = b.tags();
    b.target == q.target
        && q.board.as_deref().is_some_and(|w| w == "any" || w == b.id)
        && split_tags(q.board_tags.as_deref())
            .iter()
            .all(|t| tags.contains(t))
}

/// Leases `board_id` to `queue_id` (inside the claim's transaction).
pub fn lease(conn: &mut DbConnection, board_id: &str, queue_id: &str) -> StoreResult<()> {
    let n = diesel::update(boards::table.find(board_id))
        .filter(boards::queue_id.is_null())
        .set((
            boards::queue_id.eq(queue_id),
            boards::status.eq("busy"),
            boards::leased_at.eq(now()),
        ))
        .execute(conn)?;
    if n == 0 {
        return Err(StoreError::Conflict(format!(
            "board {board_id:?} is leased already"
        )));
    }
    Ok(())
}

/// Gives back the board `q` holds, in the transaction that records its end
/// (`status`: how it ended, or `waiting` for a retry). A health check's end
/// sets the board's health: passed is `good`, failed or error is `bad`
/// (status `bad`, out of scheduling); an aborted one changes nothing.
pub fn release(conn: &mut DbConnection, q: &QueueRow, status: Status) -> StoreResult<()> {
    let Some(board): Option<BoardRow> = boards::table
        .filter(boards::queue_id.eq(&q.id))
        .select(BoardRow::as_select())
        .get_result(conn)
        .optional()?
    else {
        return clear_pending_check(conn, q, status);
    };
    let mut health = board.health();
    if is_health_check(q) && board.id == q.board.clone().unwrap_or_default() {
        match status {
            Status::Passed => health = BoardHealth::Good,
            Status::Failed | Status::Error => health = BoardHealth::Bad,
            _ => {}
        }
    }
    let stored = if health == BoardHealth::Bad {
        "bad"
    } else {
        "idle"
    };
    let checked =
        is_health_check(q) && matches!(status, Status::Passed | Status::Failed | Status::Error);
    diesel::update(boards::table.find(&board.id))
        .set((
            boards::queue_id.eq(None::<String>),
            boards::leased_at.eq(None::<NaiveDateTime>),
            boards::status.eq(stored),
            boards::health.eq(health.as_str()),
        ))
        .execute(conn)?;
    // A board that goes bad is told to the `board.bad` notifications
    // (DESIGN section 12), in the transaction that marks it.
    if health == BoardHealth::Bad && board.health() != BoardHealth::Bad {
        let mut reason = format!("health check {} {status}", q.id);
        if let Some(why) = q.status_reason.as_deref() {
            reason.push_str(&format!(": {why}"));
        }
        super::deliveries::note_board_bad(conn, &board.id, &reason)?;
    }
    if checked {
        diesel::update(boards::table.find(&board.id))
            .set((
                boards::last_health_at.eq(now()),
                boards::last_health_queue.eq(&q.id),
            ))
            .execute(conn)?;
    }
    clear_pending_check(conn, q, status)
}

/// A health check that ended (any way) is no longer pending.
fn clear_pending_check(conn: &mut DbConnection, q: &QueueRow, status: Status) -> StoreResult<()> {
    if status.is_final() {
        diesel::update(boards::table.filter(boards::health_queue.eq(&q.id)))
            .set(boards::health_queue.eq(None::<String>))
            .execute(conn)?;
    }
    Ok(())
}

/// A queue lost with its worker: the board it held (released already by
/// the end of the queue) gets health `unknown`, so a health check runs
/// before the next user queue on it.
pub fn lost(conn: &mut DbConnection, q: &QueueRow) -> StoreResult<()> {
    let Some(board) = q.ran_on.as_deref().filter(|r| *r != "qemu") else {
        return Ok(());
    };
    diesel::update(boards::table.find(board))
        .set((boards::health.eq("unknown"), boards::status.eq("idle")))
        .execute(conn)?;
    Ok(())
}

/// Records a successful flash; a board without a health check goes from
/// `unknown` to `good` on its first.
pub fn record_flash(conn: &mut DbConnection, board_id: &str) -> StoreResult<()> {
    crate::db::write(conn, |conn| {
        let b = require_board(conn, board_id)?;
        let health = if b.health() == BoardHealth::Unknown && !b.has_health_check() {
            BoardHealth::Good
        } else {
            b.health()
        };
        diesel::update(boards::table.find(board_id))
            .set((
                boards::flashes.eq(boards::flashes + 1),
                boards::health.eq(health.as_str()),
            ))
            .execute(conn)?;
        Ok(())
    })
}

/// Records a board fault: counted, and its health becomes `unknown` until
/// a health check says otherwise.
pub fn record_fault(conn: &mut DbConnection, board_id: &str) -> StoreResult<()> {
    diesel::update(boards::table.find(board_id))
        .set((
            boards::faults.eq(boards::faults + 1),
            boards::health.eq("unknown"),
        ))
        .execute(conn)?;
    Ok(())
}

/// Whether a board other than `except` could run `q`: one whose worker is
/// alive, of its target with its tags (and its id, if `q` names one), not
/// `bad` and not in maintenance. A board fault is retried only then.
pub fn another_board_for(
    conn: &mut DbConnection,
    q: &QueueRow,
    except: &str,
    live_after: NaiveDateTime,
) -> StoreResult<bool> {
    let rows = boards::table
        .filter(boards::id.ne(except))
        .filter(boards::target.eq(&q.target))
        .select(BoardRow::as_select())
        .load(conn)?;
    for b in rows {
        if matches_requirement(&b, q)
            && !b.maintenance
            && b.health() != BoardHealth::Bad
            && b.status != "offline"
            && worker_alive(conn, &b.worker_id, live_after)?
        {
            return Ok(true);
        }
    }
    Ok(false)
}

fn require_board(conn: &mut DbConnection, id: &str) -> StoreResult<BoardRow> {
    get_board(conn, id)?.ok_or_else(|| StoreError::not_found("board", id))
}

/// One board.
pub fn get_board(conn: &mut DbConnection, id: &str) -> StoreResult<Option<BoardRow>> {
    Ok(boards::table
        .find(id)
        .select(BoardRow::as_select())
        .get_result(conn)
        .optional()?)
}

/// Every board by id, each with whether its worker is alive.
pub fn list_boards(
    conn: &mut DbConnection,
    live_after: NaiveDateTime,
) -> StoreResult<Vec<(BoardRow, bool)>> {
    super::snapshot(conn, |conn| {
        let rows: Vec<BoardRow> = boards::table
            .order(boards::id)
            .select(BoardRow::as_select())
            .load(conn)?;
        let live: Vec<String> = workers::table
            .filter(workers::last_seen.ge(live_after))
            .select(workers::id)
            .load(conn)?;
        Ok(rows
            .into_iter()
            .map(|b| {
                let alive = live.contains(&b.worker_id);
                (b, alive)
            })
            .collect())
    })
}

/// The last `limit` queues that ran on a board, newest first.
pub fn board_queues(conn: &mut DbConnection, id: &str, limit: i64) -> StoreResult<Vec<QueueRow>> {
    Ok(queues::table
        .filter(queues::ran_on.eq(id))
        .order(queues::seq.desc())
        .limit(limit)
        .select(QueueRow::as_select())
        .load(conn)?)
}

/// An admin's change: maintenance on or off, the note.
pub fn update_board(
    conn: &mut DbConnection,
    id: &str,
    maintenance: Option<bool>,
    note: Option<&str>,
) -> StoreResult<BoardRow> {
    crate::db::write(conn, |conn| {
        require_board(conn, id)?;
        if let Some(m) = maintenance {
            diesel::update(boards::table.find(id))
                .set(boards::maintenance.eq(m))
                .execute(conn)?;
        }
        if let Some(note) = note {
            diesel::update(boards::table.find(id))
                .set(boards::note.eq(note))
                .execute(conn)?;
        }
        require_board(conn, id)
    })
}

/// Boards of `worker_id` whose health check is due: health `unknown`, or
/// the last check older than `every_h` hours; none while one is pending,
/// in maintenance, or offline.
pub fn due_health_checks(conn: &mut DbConnection, worker_id: &str) -> StoreResult<Vec<String>> {
    let at = now();
    let rows: Vec<BoardRow> = boards::table
        .filter(boards::worker_id.eq(worker_id))
        .filter(boards::health_queue.is_null())
        .filter(boards::health_repo.is_not_null())
        .filter(boards::maintenance.eq(false))
        .select(BoardRow::as_select())
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter(|b| b.status != "offline")
        .filter(|b| {
            b.health() == BoardHealth::Unknown
                || b.health_every_h.filter(|h| *h > 0).is_some_and(|h| {
                    b.last_health_at
                        .is_none_or(|t| at - t >= chrono::Duration::hours(i64::from(h)))
                })
        })
        .map(|b| b.id)
        .collect())
}

/// Marks `queue_id` as `board_id`'s pending health check.
pub fn set_health_queue(
    conn: &mut DbConnection,
    board_id: &str,
    queue_id: &str,
) -> StoreResult<()> {
    diesel::update(boards::table.find(board_id))
        .set(boards::health_queue.eq(queue_id))
        .execute(conn)?;
    Ok(())
}

/// Whether some registered board could ever run a queue of `target` asking
/// for `board` (`any` or an id) with `tags`; `Err` says why not, in words.
pub fn can_ever_run(
    conn: &mut DbConnection,
    target: &str,
    board: &str,
    tags: &[String],
) -> StoreResult<Result<(), String>> {
    let rows: Vec<BoardRow> = boards::table
        .order(boards::id)
        .select(BoardRow::as_select())
        .load(conn)?;
    if board != "any" {
        let Some(b) = rows.iter().find(|b| b.id == board) else {
            return Ok(Err(format!("no board named {board:?} is registered")));
        };
        if b.target != target {
            return Ok(Err(format!(
                "board {board:?} runs target {:?}, not {target:?}",
                b.target
            )));
        }
        let have = b.tags();
        let missing: Vec<&String> = tags.iter().filter(|t| !have.contains(t)).collect();
        if !missing.is_empty() {
            return Ok(Err(format!(
                "board {board:?} has no tag {}",
                missing
                    .iter()
                    .map(|t| format!("{t:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        return Ok(Ok(()));
    }
    let fit = rows
        .iter()
        .any(|b| b.target == target && tags.iter().all(|t| b.tags().contains(t)));
    if fit {
        Ok(Ok(()))
    } else if tags.is_empty() {
        Ok(Err(format!("no board of target {target:?} is registered")))
    } else {
        Ok(Err(format!(
            "no board of target {target:?} has the tags {}",
            tags.join(", ")
        )))
    }
}

/// What a waiting board queue waits for, in words: `a board with tags
/// wifi: 2 busy, 1 bad`, `board devkit-01: busy`.
pub fn waiting_for(
    conn: &mut DbConnection,
    q: &QueueRow,
    live_after: NaiveDateTime,
) -> StoreResult<Option<String>> {
    let Some(want) = q.board.as_deref() else {
        return Ok(None);
    };
    if q.status() != Status::Waiting {
        return Ok(None);
    }
    let boards = list_boards(conn, live_after)?;
    let mut counts: Vec<(BoardStatus, usize)> = Vec::new();
    for (b, alive) in &boards {
        if !matches_requirement(b, q) {
            continue;
        }
        let s = b.shown_status(*alive);
        match counts.iter_mut().find(|(k, _)| *k == s) {
            Some((_, n)) => *n += 1,
            None => counts.push((s, 1)),
        }
    }
    let tags = split_tags(q.board_tags.as_deref());
    let what = if want != "any" {
        format!("board {want}")
    } else if tags.is_empty() {
        format!("a {} board", q.target)
    } else {
        format!("a board with tags {}", tags.join(", "))
    };
    if counts.is_empty() {
        return Ok(Some(format!("{what}: none registered")));
    }
    counts.sort_by_key(|(s, _)| BoardStatus::ALL.iter().position(|a| a == s));
    let parts: Vec<String> = counts
        .iter()
        .map(|(s, n)| {
            if want != "any" {
                s.as_str().to_owned()
            } else {
                format!("{n} {}", s.as_str())
            }
        })
        .collect();
    Ok(Some(format!("{what}: {}", parts.join(", "))))
}

/// Boards by shown status (every status), total flashes, total faults.
pub type BoardMetrics = (Vec<(BoardStatus, i64)>, i64, i64);

/// Boards by shown status, total flashes and total faults, for metrics.
pub fn board_metrics(
    conn: &mut DbConnection,
    live_after: NaiveDateTime,
) -> StoreResult<BoardMetrics> {
    let boards = list_boards(conn, live_after)?;
    let mut by = Vec::new();
    for s in BoardStatus::ALL {
        let n = boards
            .iter()
            .filter(|(b, a)| b.shown_status(*a) == s)
            .count();
        by.push((s, i64::try_from(n).unwrap_or(i64::MAX)));
    }
    let flashes = boards.iter().map(|(b, _)| i64::from(b.flashes)).sum();
    let faults = boards.iter().map(|(b, _)| i64::from(b.faults)).sum();
    Ok((by, flashes, faults))
}
