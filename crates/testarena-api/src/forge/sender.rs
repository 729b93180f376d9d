//! The app's background sender of deliveries (DESIGN section 12).
//!
//! Every [`TICK`] it turns the status changes the store recorded
//! (`delivery_events`) into deliveries, then sends those that are due: each
//! is leased first (its next try moved past the timeout, so a crash only
//! delays it), POSTed on the blocking pool with a 10 s timeout, and its
//! answer stored. A 2xx is delivered; a connection error, a timeout, a 429
//! or a 5xx is tried again after 1 s, doubling to 10 minutes, for up to
//! 24 h from the delivery's creation; any other answer is final. Statuses of
//! one commit and context go out one at a time, oldest first (a newer one
//! supersedes an older one still waiting); nothing else waits for another,
//! and nothing waits for the sender: a queue never does.

use std::collections::HashSet;
use std::io::Read as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::web;
use chrono::NaiveDateTime;
use testarena_domain::config::secret_from_env;
use testarena_domain::status::Status;
use testarena_domain::store::deliveries::{self, DeliveryAttempt, DeliveryRow, EventRow};
use testarena_domain::store::{self, now};

use super::{outgoing, signature};
use crate::error::ApiError;
use crate::state::AppState;

/// How often the sender looks for changes and due deliveries.
pub const TICK: Duration = Duration::from_millis(200);
/// One try's deadline: connect, send and answer.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// The first retry's delay; each next one doubles, up to [`MAX_DELAY`].
pub const FIRST_DELAY: Duration = Duration::from_secs(1);
pub const MAX_DELAY: Duration = Duration::from_secs(600);
/// How long a delivery is tried, from its creation.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 3600);
/// A leased delivery is sent again after this if its answer was never stored.
const LEASE: Duration = Duration::from_secs(60);
/// Sends at once, at most.
const MAX_IN_FLIGHT: usize = 8;
/// The most of an answer's body kept.
const ANSWER_BYTES: u64 = 2048;

/// Starts the sender on the current actix runtime (the server's).
pub fn spawn(state: web::Data<AppState>) {
    actix_web::rt::spawn(async move {
        let sender = Arc::new(Sender::new(state));
        let mut last_error = String::new();
        loop {
            actix_web::rt::time::sleep(TICK).await;
            match sender.round().await {
                Ok(()) => last_error.clear(),
                // Logged once while it lasts (a busy database, a full disk).
                Err(e) if e.to_string() != last_error => {
                    last_error = e.to_string();
                    tracing::warn!(error = %e, "deliveries: round failed; trying again");
                }
                Err(_) => {}
            }
        }
    });
}

#[derive(Debug)]
struct Sender {
    state: web::Data<AppState>,
    agent: ureq::Agent,
    /// Statuses of one commit and context, or one notification, in flight.
    lanes: Mutex<HashSet<String>>,
    in_flight: AtomicUsize,
}

fn lane(d: &DeliveryRow) -> String {
    match d.kind.as_str() {
        "status" => format!(
            "status {} {}",
            d.target_url,
            d.context.as_deref().unwrap_or("")
        ),
        _ => format!("notify {}", d.id),
    }
}

impl Sender {
    fn new(state: web::Data<AppState>) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(TIMEOUT))
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(format!("testarena/{}", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Self {
            state,
            agent,
            lanes: Mutex::default(),
            in_flight: AtomicUsize::new(0),
        }
    }

    async fn round(self: &Arc<Self>) -> Result<(), ApiError> {
        self.expand().await?;
        let due = self
            .state
            .db(|conn| Ok(deliveries::due_deliveries(conn, now(), 64)?))
            .await?;
        for d in due {
            if self.in_flight.load(Ordering::SeqCst) >= MAX_IN_FLIGHT {
                break;
            }
            let lane = lane(&d);
            let free = self
                .lanes
                .lock()
                .map_err(|_| ApiError::internal("sender lock poisoned"))?
                .insert(lane.clone());
            if !free {
                continue;
            }
            let until = now() + chrono::Duration::from_std(LEASE).unwrap_or_default();
            let leased = self
                .state
                .db(move |conn| Ok(deliveries::lease_delivery(conn, d.id, until)?))
                .await;
            match leased {
                Ok(Some(row)) => {
                    self.in_flight.fetch_add(1, Ordering::SeqCst);
                    let me = self.clone();
                    actix_web::rt::spawn(async move {
                        me.send(row).await;
                        me.in_flight.fetch_sub(1, Ordering::SeqCst);
                        if let Ok(mut lanes) = me.lanes.lock() {
                            lanes.remove(&lane);
                        }
                    });
                }
                other => {
                    if let Ok(mut lanes) = self.lanes.lock() {
                        lanes.remove(&lane);
                    }
                    other?;
                }
            }
        }
        Ok(())
    }

    /// Turns the recorded changes into deliveries, oldest first.
    async fn expand(&self) -> Result<(), ApiError> {
        let events = self
            .state
            .db(|conn| Ok(deliveries::pending_events(conn, 100)?))
            .await?;
        for event in events {
            let config = self.state.config.clone();
            self.state
                .db(move |conn| {
                    let items = deliveries_of(&config, conn, &event)?;
                    deliveries::expand_event(conn, event.id, &items)?;
                    Ok(())
                })
                .await?;
        }
        Ok(())
    }

    async fn send(&self, row: DeliveryRow) {
        let agent = self.agent.clone();
        let id = row.id;
        let sent = {
            let row = row.clone();
            web::block(move || post(&agent, &row)).await
        };
        let answer = sent.unwrap_or_else(|e| Err(Failure::final_(format!("cannot send: {e}"))));
        let attempt = next_step(&row, answer, now());
        let stored = self
            .state
            .db({
                let attempt = attempt.clone();
                move |conn| Ok(deliveries::record_attempt(conn, id, &attempt)?)
            })
            .await;
        let what = format!("{} {}", row.kind, row.event);
        match (&stored, attempt.state) {
            (Err(e), _) => {
                tracing::warn!(delivery.id = id, error = %e, "delivery: cannot store the answer; it is sent again")
            }
            (Ok(_), "delivered") => {
                tracing::info!(delivery.id = id, %what, code = attempt.code, "delivered")
            }
            (Ok(_), "pending") => tracing::info!(
                delivery.id = id, %what, code = attempt.code,
                error = attempt.error.as_deref().unwrap_or(""), "delivery failed; trying again"
            ),
            (Ok(_), _) => tracing::warn!(
                delivery.id = id, %what, code = attempt.code,
                error = attempt.error.as_deref().unwrap_or(""), "delivery failed for good"
            ),
        }
    }
}

/// The deliveries one recorded change calls for.
fn deliveries_of(
    config: &testarena_domain::config::Config,
    conn: &mut testarena_domain::db::DbConnection,
    event: &EventRow,
) -> Result<Vec<deliveries::NewDelivery>, ApiError> {
    Ok(match event.event.as_str() {
        "queue.status" => {
            let Ok(status) = event.status.parse::<Status>() else {
                return Ok(Vec::new());
            };
            match store::queue_detail(conn, &event.subject)? {
                // Deleted meanwhile: nothing to tell.
                None => Vec::new(),
                Some(detail) => outgoing::for_queue(config, &detail, status),
            }
        }
        "board.bad" => outgoing::for_board_bad(config, &event.subject, &event.status),
        _ => Vec::new(),
    })
}

/// Why a try got no usable answer.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Failure {
    retry: bool,
    message: String,
}

impl Failure {
    fn retry(message: String) -> Self {
        Self {
            retry: true,
            message,
        }
    }
    fn final_(message: String) -> Self {
        Self {
            retry: false,
            message,
        }
    }
}

/// An answer: its status, the start of its body, and its `Retry-After` in
/// seconds when it gave one.
type Answered = (u16, String, Option<Duration>);

/// One POST of a delivery.
fn post(agent: &ureq::Agent, row: &DeliveryRow) -> Result<Answered, Failure> {
    let mut request = agent
        .post(&row.target_url)
        .header("Content-Type", "application/json");
    let secret =
        match row.auth_env.as_deref() {
            None => None,
            Some(env) => Some(secret_from_env(env).ok_or_else(|| {
                Failure::retry(format!("{env} is not set in the app's environment"))
            })?),
        };
    match (row.kind.as_str(), row.forge.as_deref(), &secret) {
        ("status", Some("gitea"), Some(token)) => {
            request = request.header("Authorization", format!("token {}", token.expose()));
        }
        ("status", Some("github"), Some(token)) => {
            request = request
                .header("Authorization", format!("Bearer {}", token.expose()))
                .header("Accept", "application/vnd.github+json")
                .header("X-GitHub-Api-Version", "2022-11-28");
        }
        ("status", Some("gitlab"), Some(token)) => {
            request = request.header("PRIVATE-TOKEN", token.expose());
        }
        ("status", _, _) => {
            return Err(Failure::final_("a status without a forge or token".into()));
        }
        (_, _, secret) => {
            request = request
                .header("X-TestArena-Event", &row.event)
                .header("X-TestArena-Delivery", row.id.to_string());
            if let Some(secret) = secret {
                let signed = signature::sign(secret.expose().as_bytes(), row.payload.as_bytes());
                request = request.header("X-TestArena-Signature", signed);
            }
        }
    }
    // An error may quote the URL, and a notification's URL can be a secret.
    let said = |e: ureq::Error| e.to_string().replace(&row.target_url, "<the URL>");
    match request.send(row.payload.as_bytes()) {
        Ok(response) => {
            let code = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let mut body = Vec::new();
            let _ = response
                .into_body()
                .into_reader()
                .take(ANSWER_BYTES)
                .read_to_end(&mut body);
            Ok((
                code,
                String::from_utf8_lossy(&body).into_owned(),
                retry_after,
            ))
        }
        Err(
            e @ (ureq::Error::Timeout(_)
            | ureq::Error::Io(_)
            | ureq::Error::ConnectionFailed
            | ureq::Error::HostNotFound),
        ) => Err(Failure::retry(match e {
            ureq::Error::Timeout(_) => format!("no answer within {} s", TIMEOUT.as_secs()),
            other => said(other),
        })),
        Err(e) => Err(Failure::final_(said(e))),
    }
}

/// The delay before try number `tries + 1`, `tries` made so far (from 1).
pub fn backoff(tries: i32) -> Duration {
    let doublings = u32::try_from(tries.saturating_sub(1)).unwrap_or(0).min(20);
    (FIRST_DELAY * 2u32.pow(doublings)).min(MAX_DELAY)
}

/// What a try's answer means for the delivery.
fn next_step(
    row: &DeliveryRow,
    answer: Result<Answered, Failure>,
    at: NaiveDateTime,
) -> DeliveryAttempt {
    let tries = row.attempts + 1;
    let mut wait = backoff(tries);
    let (code, body, failure) = match answer {
        Ok((code, body, _)) if (200..300).contains(&code) => {
            return DeliveryAttempt {
                state: "delivered",
                code: Some(i32::from(code)),
                answer: Some(body),
                error: None,
                next_try_at: at,
            };
        }
        Ok((code, body, retry_after)) => {
            let retry = code == 429 || code >= 500;
            // A forge that says when to come back is believed, up to the
            // longest delay.
            if let Some(asked) = retry_after {
                wait = wait.max(asked.min(MAX_DELAY));
            }
            (
                Some(i32::from(code)),
                Some(body),
                Failure {
                    retry,
                    message: String::new(),
                },
            )
        }
        Err(f) => (None, None, f),
    };
    let error = (!failure.message.is_empty()).then_some(failure.message);
    let next = at + chrono::Duration::from_std(wait).unwrap_or_default();
    let deadline = row.created_at + chrono::Duration::from_std(GIVE_UP_AFTER).unwrap_or_default();
    let (state, error) = match (failure.retry, next <= deadline) {
        (true, true) => ("pending", error),
        (true, false) => (
            "failed",
            Some(match error {
                Some(e) => format!("{e} (gave up after 24 h)"),
                None => "gave up after 24 h".to_owned(),
            }),
        ),
        (false, _) => ("failed", error),
    };
    DeliveryAttempt {
        state,
        code,
        answer: body,
        error,
        next_try_at: if state == "pending" { next } else { at },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(attempts: i32, created_at: NaiveDateTime) -> DeliveryRow {
        DeliveryRow {
            id: 1,
            kind: "status".into(),
            event: "success".into(),
            queue_id: None,
            hook_id: None,
            forge: Some("gitea".into()),
            auth_env: Some("T".into()),
            context: Some("testarena".into()),
            target_url: "http://127.0.0.1:1/x".into(),
            payload: "{}".into(),
            state: "pending".into(),
            attempts,
            last_code: None,
            last_answer: None,
            last_error: None,
            next_try_at: created_at,
            created_at,
            updated_at: created_at,
        }
    }

    #[test]
    fn the_backoff_doubles_from_one_second_to_ten_minutes() {
        let s: Vec<u64> = (1..=12).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(s, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600]);
    }

    #[test]
    fn answers_decide_what_comes_next() {
        let t0 = now();
        let step = |attempts, answer| next_step(&row(attempts, t0), answer, t0);
        let ok = step(0, Ok((201, "{}".into(), None)));
        assert_eq!((ok.state, ok.code), ("delivered", Some(201)));
        for code in [500, 502, 503, 429] {
            let s = step(1, Ok((code, "busy".into(), None)));
            assert_eq!(s.state, "pending", "{code}");
            assert_eq!(
                s.next_try_at - t0,
                chrono::Duration::seconds(2),
                "second retry after 2 s"
            );
        }
        for code in [400, 401, 403, 404, 422, 301] {
            assert_eq!(
                step(0, Ok((code, String::new(), None))).state,
                "failed",
                "{code}"
            );
        }
        let down = step(0, Err(Failure::retry("connection refused".into())));
        assert_eq!(
            (down.state, down.error.as_deref()),
            ("pending", Some("connection refused"))
        );
        assert_eq!(down.next_try_at - t0, chrono::Duration::seconds(1));
        // Retry-After is believed, up to ten minutes.
        let later = step(0, Ok((429, String::new(), Some(Duration::from_secs(30)))));
        assert_eq!(
            (later.state, later.next_try_at - t0),
            ("pending", chrono::Duration::seconds(30))
        );
        let capped = step(
            0,
            Ok((503, String::new(), Some(Duration::from_secs(86_400)))),
        );
        assert_eq!(capped.next_try_at - t0, chrono::Duration::seconds(600));
        let bad = step(0, Err(Failure::final_("bad URL".into())));
        assert_eq!(bad.state, "failed");
        // A day after its creation it is not tried again.
        let old = next_step(
            &row(30, t0 - chrono::Duration::hours(24)),
            Ok((503, String::new(), None)),
            t0,
        );
        assert_eq!(old.state, "failed");
        assert!(old.error.unwrap().contains("gave up after 24 h"));
    }
}
