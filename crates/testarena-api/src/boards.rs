//! The boards service (DESIGN section 10): a submission's board
//! requirement checked against the registered boards, the boards as the
//! API shows them, an admin's changes and health-check requests. The board
//! routes and the queue service call these; they reach into no route.

use chrono::NaiveDateTime;
use testarena_domain::api::{Board, BoardDetail, BoardQueue, CreateQueue, Queue};
use testarena_domain::models::QueueRow;
use testarena_domain::store::{self, boards::BoardRow};
use testarena_domain::validate;

use crate::error::ApiError;
use crate::state::AppState;

/// The longest note an admin may put on a board.
pub const MAX_NOTE: usize = 1000;
/// How many of a board's queues `GET /api/v1/boards/{id}` shows.
pub const RECENT_QUEUES: i64 = 20;

/// A board requirement: `any` or a board id, and the tags asked for.
pub type Requirement = (String, Vec<String>);

/// How long a worker may be silent before its boards count as gone
/// (`worker.lost_after_s` of the app's config).
pub fn lost_after(state: &AppState) -> chrono::Duration {
    chrono::Duration::seconds(
        i64::try_from(state.config.worker.lost_after_s).unwrap_or(i64::MAX / 1000),
    )
}

/// The heartbeat older than which a worker counts as gone, on the
/// database's clock, which the heartbeats are written on (DESIGN 13.4).
pub fn live_after(
    conn: &mut testarena_domain::db::DbConnection,
    lost: chrono::Duration,
) -> Result<NaiveDateTime, ApiError> {
    Ok(testarena_domain::db::db_now(conn).map_err(store::StoreError::from)? - lost)
}

/// The submission's board requirement, checked: `None` for QEMU. Tags
/// without `board` mean `any`. A requirement that no registered board could
/// ever meet (target, id, tags) is 422 with `field: "board"`.
pub fn requirement(
    conn: &mut testarena_domain::db::DbConnection,
    req: &CreateQueue,
    target: &str,
) -> Result<Option<Requirement>, ApiError> {
    let tags = req.board_tags.clone().unwrap_or_default();
    let board = match (&req.board, tags.is_empty()) {
        (None, true) => return Ok(None),
        (None, false) => "any".to_owned(),
        (Some(b), _) => b.clone(),
    };
    if board != "any" && !validate::is_valid_id(&board) {
        return Err(ApiError::validation(
            "board",
            format!("{board:?} must be \"any\" or a board id"),
        ));
    }
    for (i, tag) in tags.iter().enumerate() {
        if !validate::is_valid_name(tag) {
            return Err(ApiError::validation(
                format!("board_tags[{i}]"),
                format!("{tag:?} must match [A-Za-z0-9][A-Za-z0-9._-]{{0,63}}"),
            ));
        }
    }
    match store::boards::can_ever_run(conn, target, &board, &tags)? {
        Ok(()) => Ok(Some((board, tags))),
        Err(why) => Err(ApiError::validation("board", why)),
    }
}

/// Adds `waiting_for` to a waiting board queue's JSON.
pub fn add_waiting_for(
    conn: &mut testarena_domain::db::DbConnection,
    row: &QueueRow,
    queue: &mut Queue,
    lost: chrono::Duration,
) -> Result<(), ApiError> {
    // Only a queue that waits for a board asks who is alive.
    if row.board.is_none() || row.status != "waiting" {
        return Ok(());
    }
    let live = live_after(conn, lost)?;
    queue.waiting_for = store::boards::waiting_for(conn, row, live)?;
    Ok(())
}

/// A board row as the API shows it.
pub fn board_json(b: &BoardRow, worker_alive: bool) -> Board {
    Board {
        id: b.id.clone(),
        worker: b.worker_id.clone(),
        target: b.target.clone(),
        tags: b.tags(),
        status: b.shown_status(worker_alive),
        health: b.health(),
        queue: b.queue_id.clone(),
        serial: b.serial.clone(),
        baud: b.baud,
        last_health_at: b.last_health_at.map(|t| t.and_utc()),
        last_health_queue: b.last_health_queue.clone(),
        health_queue: b.health_queue.clone(),
        has_health_check: b.has_health_check(),
        maintenance: b.maintenance,
        note: b.note.clone(),
        flashes: i64::from(b.flashes),
        faults: i64::from(b.faults),
    }
}

fn no_board(id: &str) -> ApiError {
    ApiError::NotFound(format!("no board {id:?}"))
}

/// Every board.
pub async fn list(state: &AppState) -> Result<Vec<Board>, ApiError> {
    let lost = lost_after(state);
    state
        .db(move |conn| {
            let live = live_after(conn, lost)?;
            let rows = store::boards::list_boards(conn, live)?;
            Ok(rows
                .iter()
                .map(|(b, alive)| board_json(b, *alive))
                .collect())
        })
        .await
}

/// One board with its last queues.
pub async fn detail(state: &AppState, id: &str) -> Result<BoardDetail, ApiError> {
    if !validate::is_valid_id(id) {
        return Err(no_board(id));
    }
    let (id, lost) = (id.to_owned(), lost_after(state));
    state
        .db(move |conn| {
            let live = live_after(conn, lost)?;
            let rows = store::boards::list_boards(conn, live)?;
            let (b, alive) = rows
                .iter()
                .find(|(b, _)| b.id == id)
                .ok_or_else(|| no_board(&id))?;
            let queues = store::boards::board_queues(conn, &id, RECENT_QUEUES)?;
            Ok(BoardDetail {
                board: board_json(b, *alive),
                queues: queues
                    .iter()
                    .map(|q| BoardQueue {
                        id: q.id.clone(),
                        status: q.status(),
                        status_reason: q.status_reason.clone(),
                        owner: q.owner.clone(),
                        branch: q.branch.clone(),
                        created_at: q.created_at.and_utc(),
                        finished_at: q.finished_at.map(|t| t.and_utc()),
                    })
                    .collect(),
            })
        })
        .await
}

/// An admin's change of maintenance or note.
pub async fn update(
    state: &AppState,
    id: &str,
    maintenance: Option<bool>,
    note: Option<String>,
) -> Result<Board, ApiError> {
    if !validate::is_valid_id(id) {
        return Err(no_board(id));
    }
    if let Some(note) = &note
        && (note.chars().count() > MAX_NOTE || note.chars().any(|c| c.is_control() && c != '\n'))
    {
        return Err(ApiError::validation(
            "note",
            format!("at most {MAX_NOTE} characters, no control characters"),
        ));
    }
    let (id, lost) = (id.to_owned(), lost_after(state));
    state
        .db(move |conn| {
            let live = live_after(conn, lost)?;
            let row = store::boards::update_board(conn, &id, maintenance, note.as_deref())
                .map_err(|e| match e {
                    store::StoreError::NotFound { .. } => no_board(&id),
                    other => other.into(),
                })?;
            let alive = store::boards::list_boards(conn, live)?
                .iter()
                .any(|(b, a)| b.id == id && *a);
            Ok(board_json(&row, alive))
        })
        .await
}

/// An admin's request for a health check: the queue that will run it.
pub async fn request_health(state: &AppState, id: &str) -> Result<Queue, ApiError> {
    if !validate::is_valid_id(id) {
        return Err(no_board(id));
    }
    let id = id.to_owned();
    state
        .db(move |conn| {
            let row =
                store::board_queues::request_health_check(conn, &id).map_err(|e| match e {
                    store::StoreError::NotFound { .. } => no_board(&id),
                    other => other.into(),
                })?;
            let detail = store::queue_detail(conn, &row.id)?
                .ok_or_else(|| ApiError::internal("health queue vanished"))?;
            tracing::info!(board = %id, queue.id = %row.id, "health check requested");
            Ok(Queue::from(&detail))
        })
        .await
}

/// The boards' lines of `/metrics`: boards by status, flashes, board faults.
pub async fn metrics(state: &AppState) -> Result<String, ApiError> {
    use std::fmt::Write as _;
    let lost = lost_after(state);
    let (by, flashes, faults) = state
        .db(move |conn| {
            let live = live_after(conn, lost)?;
            Ok(store::boards::board_metrics(conn, live)?)
        })
        .await?;
    let mut out =
        String::from("# HELP testarena_boards Boards by status.\n# TYPE testarena_boards gauge\n");
    for (status, n) in by {
        let _ = writeln!(
            out,
            "testarena_boards{{status=\"{}\"}} {n}",
            status.as_str()
        );
    }
    let _ = write!(
        out,
        "# HELP testarena_board_flashes_total Successful flashes of boards.\n\
         # TYPE testarena_board_flashes_total counter\ntestarena_board_flashes_total {flashes}\n\
         # HELP testarena_board_faults_total Board faults (flash failed, console gone, port refused).\n\
         # TYPE testarena_board_faults_total counter\ntestarena_board_faults_total {faults}\n"
    );
    Ok(out)
}
