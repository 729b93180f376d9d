//! Wakes a running queue's abort poll as soon as the database says the
//! queue changed: on PostgreSQL every write to a queue's status or abort
//! request notifies `queue:<id>`, which the worker's listener hands to that
//! queue's run, so an abort reaches the run at once rather than at its next
//! poll ([`crate::supervise::ABORT_POLL`], which stays as the fallback). On
//! SQLite nothing nudges: a change of the database file does not say which
//! queue it concerns, and the poll is what reads it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

/// The runs of this worker that can be nudged, by queue id.
#[derive(Debug, Clone, Default)]
pub struct Nudges(Arc<Mutex<HashMap<String, Arc<Notify>>>>);

impl Nudges {
    /// What wakes queue `queue_id`'s run, registered until the returned
    /// [`Registered`] is dropped.
    pub fn register(&self, queue_id: &str) -> Registered {
        let notify = Arc::new(Notify::new());
        self.runs().insert(queue_id.to_owned(), Arc::clone(&notify));
        Registered {
            nudges: self.clone(),
            queue_id: queue_id.to_owned(),
            notify,
        }
    }

    /// Wakes the run of `queue_id`, if it runs here.
    pub fn nudge(&self, queue_id: &str) {
        if let Some(notify) = self.runs().get(queue_id) {
            notify.notify_one();
        }
    }

    /// Wakes every run: the listener reconnected, and what was notified
    /// meanwhile is lost.
    pub fn nudge_all(&self) {
        for notify in self.runs().values() {
            notify.notify_one();
        }
    }

    fn runs(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Notify>>> {
        // The map holds no invariant a panic could break halfway.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One run's registration; dropping it unregisters the run.
#[derive(Debug)]
pub struct Registered {
    nudges: Nudges,
    queue_id: String,
    notify: Arc<Notify>,
}

impl Registered {
    /// What the run waits on (a nudge that came while nobody waited is
    /// kept, once, for the next wait).
    pub fn notify(&self) -> Arc<Notify> {
        Arc::clone(&self.notify)
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut runs = self.nudges.runs();
        // A later run of the same queue (its next attempt) may have
        // registered meanwhile: only this one is removed.
        if runs
            .get(&self.queue_id)
            .is_some_and(|n| Arc::ptr_eq(n, &self.notify))
        {
            runs.remove(&self.queue_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Whether `notify` holds a nudge (taking it).
    async fn nudged(notify: &Notify) -> bool {
        tokio::time::timeout(Duration::from_millis(20), notify.notified())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn a_nudge_reaches_its_run_only_and_none_after_it_is_dropped() {
        let nudges = Nudges::default();
        let (a, b) = (nudges.register("a"), nudges.register("b"));
        nudges.nudge("a");
        assert!(nudged(&a.notify()).await);
        assert!(!nudged(&b.notify()).await);
        nudges.nudge("unknown");
        nudges.nudge_all();
        assert!(nudged(&a.notify()).await && nudged(&b.notify()).await);
        let kept = a.notify();
        drop(a);
        nudges.nudge("a");
        assert!(!nudged(&kept).await, "a dropped run is not nudged");
    }

    #[tokio::test]
    async fn dropping_an_earlier_run_keeps_the_next_attempts_registration() {
        let nudges = Nudges::default();
        let first = nudges.register("q");
        let second = nudges.register("q");
        drop(first);
        nudges.nudge("q");
        assert!(nudged(&second.notify()).await);
    }
}
