//! The app's one `LISTEN` on PostgreSQL (DESIGN section 13): wakes the
//! followers of a queue when the database says `queue:<id>` (its row
//! changed: insert, status, abort request, delete) or `log:<id>` (new log
//! chunks), so live events go out when the worker's flush commits instead
//! of at the next poll.
//!
//! A queue's followers (one per server thread) each hold a `watch`
//! receiver of its counter; a notification bumps it, and a follower busy
//! looking when it came sees the change at its next wait, so no wake is
//! lost. A listener that reconnected bumps every counter: what was sent
//! while it was away is gone, and everyone looks again. On SQLite there is
//! no listener and the followers poll the files as before.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use testarena_domain::db::PgUrl;
use testarena_domain::db::listen::{self, Event, Listener};
use tokio::sync::watch;

/// How often a queue was woken, by what: its row (`queue:<id>`, and
/// anything but `log:`) or its logs (`log:<id>`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Woken {
    pub row: u64,
    pub logs: u64,
}

/// The wake-ups of one queue.
pub type Wake = watch::Receiver<Woken>;

type Queues = Mutex<HashMap<String, watch::Sender<Woken>>>;

/// The LISTEN thread of this app (PostgreSQL) or nothing (SQLite).
#[derive(Debug, Default)]
pub struct Hub {
    queues: Arc<Queues>,
    /// Stops the thread when the hub is dropped; `None` on SQLite.
    listener: Option<Listener>,
}

impl Hub {
    /// No listener: followers poll (SQLite).
    pub fn polling() -> Self {
        Self::default()
    }

    /// Starts the listener thread on the database at `url`.
    pub fn listening(url: &PgUrl, connect_timeout: Duration) -> std::io::Result<Self> {
        let queues: Arc<Queues> = Arc::default();
        let heard = Arc::clone(&queues);
        let listener = listen::listen(url, connect_timeout, move |event| on_event(&heard, &event))?;
        Ok(Self {
            queues,
            listener: Some(listener),
        })
    }

    /// True when notifications wake the followers.
    pub fn is_listening(&self) -> bool {
        self.listener.is_some()
    }

    /// The wake-ups of queue `id`, or `None` without a listener.
    pub fn subscribe(&self, id: &str) -> Option<Wake> {
        self.listener.as_ref()?;
        let mut queues = self.queues.lock().ok()?;
        // Queues nobody follows any more are forgotten here, not on the
        // listener's thread.
        queues.retain(|_, sender| sender.receiver_count() > 0);
        Some(
            queues
                .entry(id.to_owned())
                .or_insert_with(|| watch::channel(Woken::default()).0)
                .subscribe(),
        )
    }
}

/// Runs on the listener's thread: bumps the counters of the queue named by
/// the payload (`queue:<id>`, `log:<id>`, ...), or every counter after a
/// reconnection. Never blocks for long: one map lookup.
fn on_event(queues: &Queues, event: &Event) {
    let Ok(queues) = queues.lock() else { return };
    match event {
        Event::Notified(payload) => {
            let Some((kind, id)) = payload.split_once(':') else {
                return;
            };
            if let Some(sender) = queues.get(id) {
                sender.send_modify(|w| match kind {
                    "log" => w.logs = w.logs.wrapping_add(1),
                    _ => w.row = w.row.wrapping_add(1),
                });
            }
        }
        Event::Reconnected => {
            for sender in queues.values() {
                sender.send_modify(|w| {
                    w.row = w.row.wrapping_add(1);
                    w.logs = w.logs.wrapping_add(1);
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_wakes_its_queue_only_and_a_reconnection_wakes_all() {
        let queues: Queues = Mutex::default();
        let mut a = {
            let mut q = queues.lock().unwrap();
            q.entry("a".into())
                .or_insert_with(|| watch::channel(Woken::default()).0)
                .subscribe()
        };
        let mut b = {
            let mut q = queues.lock().unwrap();
            q.entry("b".into())
                .or_insert_with(|| watch::channel(Woken::default()).0)
                .subscribe()
        };
        on_event(&queues, &Event::Notified("log:a".into()));
        on_event(&queues, &Event::Notified("queue:nobody".into()));
        on_event(&queues, &Event::Notified("garbage".into()));
        assert!(a.has_changed().unwrap());
        assert!(!b.has_changed().unwrap());
        assert_eq!(*a.borrow_and_update(), Woken { row: 0, logs: 1 });
        on_event(&queues, &Event::Reconnected);
        assert!(a.has_changed().unwrap() && b.has_changed().unwrap());
        b.borrow_and_update();
        on_event(&queues, &Event::Notified("queue:b".into()));
        assert_eq!(*b.borrow_and_update(), Woken { row: 2, logs: 1 });
    }
}
