//! Forges (DESIGN section 12): pushes start queues, verdicts go back.
//!
//! - [`signature`]: the forges' webhook signatures, and TestArena's own.
//! - [`push`]: the event, delivery id and push body of each forge.
//! - [`hooks`]: a received webhook turned into queues (the service behind
//!   `POST /api/v1/hooks/{repo}`).
//! - [`outgoing`]: the commit statuses and notifications a change calls for.
//! - [`sender`]: the background loop that sends them, with retries.
//!
//! Layering: `hooks` and `sender` use `outgoing`, `push` and `signature`;
//! nothing here uses `hooks` or `sender`.

pub mod hooks;
pub mod outgoing;
pub mod push;
pub mod sender;
pub mod signature;

use chrono::NaiveDateTime;
use testarena_domain::api::{Delivery, HookRecord};
use testarena_domain::store::deliveries::{DeliveryRow, HookRow};

fn utc(t: NaiveDateTime) -> chrono::DateTime<chrono::Utc> {
    t.and_utc()
}

/// A notification's URL as the API shows it: scheme and host only, since
/// a chat service's webhook URL is often itself a secret (`https://host/…`).
/// A status's URL names the forge's API and the commit, and is shown whole.
fn shown_url(row: &DeliveryRow) -> String {
    if row.kind == "status" {
        return row.target_url.clone();
    }
    let (scheme, rest) = row
        .target_url
        .split_once("://")
        .unwrap_or(("", row.target_url.as_str()));
    let host = rest.split('/').next().unwrap_or("");
    // Credentials in the authority are never shown either.
    let host = host.rsplit('@').next().unwrap_or(host);
    format!("{scheme}://{host}/…")
}

/// A delivery as the API shows it.
pub fn delivery_json(row: &DeliveryRow) -> Delivery {
    Delivery {
        id: row.id,
        kind: row.kind.clone(),
        event: row.event.clone(),
        context: row.context.clone(),
        target_url: shown_url(row),
        payload: row.payload.clone(),
        state: row.state.clone(),
        attempts: row.attempts,
        last_code: row.last_code,
        last_answer: row.last_answer.clone(),
        last_error: row.last_error.clone(),
        next_try_at: (row.state == "pending").then(|| utc(row.next_try_at)),
        created_at: utc(row.created_at),
        updated_at: utc(row.updated_at),
    }
}

/// A received hook as the API shows it, with the deliveries it made.
pub fn hook_json(row: &HookRow, sent: &[DeliveryRow]) -> HookRecord {
    HookRecord {
        delivery: row.delivery_id.clone(),
        forge: row.forge.clone(),
        event: row.event.clone(),
        branch: row.branch.clone(),
        commit: row.commit_sha.clone(),
        pusher: row.pusher.clone(),
        outcome: row.outcome.clone(),
        reason: row.reason.clone(),
        queues: row.queue_ids(),
        received_at: utc(row.received_at),
        deliveries: sent.iter().map(delivery_json).collect(),
    }
}

/// The deliveries' part of `/metrics`: how many are stored, by kind and
/// outcome (`pending`, `delivered`, `failed`, `superseded`), every pair
/// shown, zeros too.
pub fn metrics(counts: &[(String, String, i64)]) -> String {
    use std::fmt::Write as _;
    let mut out = String::from(
        "# HELP testarena_deliveries Commit statuses and notifications stored, by kind and outcome.\n\
         # TYPE testarena_deliveries gauge\n",
    );
    for kind in ["status", "notify"] {
        for outcome in ["pending", "delivered", "failed", "superseded"] {
            let n = counts
                .iter()
                .find(|(k, s, _)| k == kind && s == outcome)
                .map_or(0, |(_, _, n)| *n);
            let _ = writeln!(
                out,
                "testarena_deliveries{{kind=\"{kind}\",outcome=\"{outcome}\"}} {n}"
            );
        }
    }
    out
}
