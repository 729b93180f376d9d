//! Where a queue runs and what is left of it once it ends.
//!
//! Each worker slot keeps one checkout per repository under
//! `work/<worker_id>/<slot>/<repo>/` (DESIGN section 3), moved to each of
//! its queues' commits by the git mirror; a [`Lease`] from the worker's
//! [`SlotPool`] says which slot a queue has, so two queues never share a
//! tree. The pool prefers a free slot that already holds the queue's
//! repository: moving a tree writes only what changed, making one writes
//! it all.
//!
//! [`end_queue`] is the one place that ends a queue's files, for the queue's
//! own run and for the recovery of a lost one: the build directory is
//! removed first (so that on a full disk the space it frees lets the end be
//! recorded), then the end is recorded, the slot given back and
//! `junit.xml` written from what the database holds. On PostgreSQL
//! ([`DbLogs`]) the queue's logs are shipped to the end, `junit.xml` is
//! stored in the database, and the queue's folder is removed (unless
//! `keep_workspace`): the app reads the database. All file work runs on
//! the blocking pool.

use std::collections::HashSet;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use testarena_domain::junit;
use testarena_domain::paths::Home;
use testarena_domain::store;
use testarena_domain::store::logs::{self, Fence};
use tokio::sync::{Notify, watch};

use crate::db::{self, Db};
use crate::ship::Shipper;
use crate::{Error, Result};

/// The name of the build directory inside a workspace (`{build_dir}`).
pub const BUILD_DIR: &str = "build";

/// The slots of one worker: which are free and which repositories each
/// holds a checkout of.
#[derive(Debug, Clone)]
pub struct SlotPool {
    state: Arc<Mutex<PoolState>>,
    freed: Arc<Notify>,
}

#[derive(Debug)]
struct PoolState {
    busy: Vec<bool>,
    repos: Vec<HashSet<String>>,
}

impl SlotPool {
    pub fn new(slots: usize) -> Self {
        Self {
            state: Arc::new(Mutex::new(PoolState {
                busy: vec![false; slots],
                repos: vec![HashSet::new(); slots],
            })),
            freed: Arc::new(Notify::new()),
        }
    }

    fn state(&self) -> MutexGuard<'_, PoolState> {
        // No code panics while holding the lock; a poisoned one is still sound.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The lowest free slot, if any, taken until the lease is dropped.
    pub fn take(&self) -> Option<Lease> {
        let mut state = self.state();
        let index = state.busy.iter().position(|busy| !busy)?;
        state.busy[index] = true;
        Some(Lease {
            index,
            pool: self.clone(),
            used: true,
        })
    }

    /// Resolves once a lease is given back (at once if one was since the
    /// last call).
    pub async fn freed(&self) {
        self.freed.notified().await;
    }
}

/// A slot taken for one queue; given back when dropped.
#[derive(Debug)]
pub struct Lease {
    index: usize,
    pool: SlotPool,
    /// Whether giving it back tells [`SlotPool::freed`].
    used: bool,
}

impl Lease {
    /// The slot's number, from 0.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Moves the lease to a free slot that holds a checkout of `repo`, if
    /// this one does not and another does; then notes that this slot holds
    /// one from now on.
    pub fn prefer(&mut self, repo: &str) {
        let mut state = self.pool.state();
        if !state.repos[self.index].contains(repo) {
            let better =
                (0..state.busy.len()).find(|i| !state.busy[*i] && state.repos[*i].contains(repo));
            if let Some(better) = better {
                state.busy[better] = true;
                state.busy[self.index] = false;
                self.index = better;
            }
        }
        state.repos[self.index].insert(repo.to_owned());
    }

    /// Gives back a lease no queue used, without waking those waiting for
    /// a free slot (nothing changed for them).
    pub fn unused(mut self) {
        self.used = false;
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.pool.state().busy[self.index] = false;
        if self.used {
            self.pool.freed.notify_one();
        }
    }
}

/// Removes a directory tree if it exists.
pub(crate) fn remove_dir(path: &Path) -> Result<()> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(path, e)),
        _ => Ok(()),
    }
}

/// A queue's end on PostgreSQL: its logs are in the database.
#[derive(Debug)]
pub struct DbLogs {
    /// The run's shipper (none in the recovery of a lost queue).
    pub shipper: Option<Shipper>,
    /// The run's fence (none in the recovery of a lost queue).
    pub fence: Option<Fence>,
    /// `keep_workspace`: the local copies stay.
    pub keep_local: bool,
    /// The worker's shutdown, which ends the wait for the database.
    pub shutdown: watch::Receiver<bool>,
}

/// Ends a queue's files around the recording of its end: removes
/// `build_dir` (when given), runs `record` (which stores the end and
/// returns whether it did), gives `lease` back (on PostgreSQL once the
/// logs are shipped), then writes `junit.xml`
/// from the database (on PostgreSQL, with `db_logs`: the logs shipped to
/// the end, `junit.xml` stored there, the folder removed). Returns what
/// `record` returned.
///
/// The queue's own run passes its build directory and its lease; the
/// recovery of a lost queue passes neither (the end is recorded already,
/// and the slot's next checkout, or its worker's next start, cleans the
/// tree; another worker's slot may be busy again).
pub async fn end_queue(
    home: &Home,
    db: &Db,
    queue_id: &str,
    build_dir: Option<PathBuf>,
    lease: Option<Lease>,
    record: impl Future<Output = bool>,
    db_logs: Option<DbLogs>,
) -> bool {
    if let Some(build_dir) = build_dir
        && let Err(e) = db::blocking(move || remove_dir(&build_dir)).await
    {
        tracing::error!(error = %e, "cannot remove the build directory");
    }
    let recorded = record.await;
    let (fence, keep_local, shipped) = match db_logs {
        None => (None, true, true),
        Some(DbLogs {
            shipper,
            fence,
            keep_local,
            shutdown,
        }) => {
            let shipped = match shipper {
                Some(shipper) => shipper.finish(shutdown).await,
                None => true,
            };
            (Some(fence), keep_local, shipped)
        }
    };
    // After the last flush: a retried queue's next attempt (on this slot
    // or another worker's) appends to the same timeline.
    drop(lease);
    let id = queue_id.to_owned();
    match db.run(move |c| store::queue_detail(c, &id)).await {
        // A queue waiting for its next attempt gets its `junit.xml` when
        // it ends for good.
        Ok(Some(detail)) if detail.queue.status().is_final() => {
            let xml = junit::render(&detail);
            if let Some(fence) = &fence {
                let (id, fence, data) = (queue_id.to_owned(), fence.clone(), xml.clone());
                let stored = db.run_waiting(move |c| {
                    logs::put_ended_file(c, &id, fence.as_ref(), "junit.xml", data.as_bytes())
                });
                if let Err(e) = stored.await {
                    tracing::error!(error = %e, "cannot store junit.xml");
                }
            }
            if keep_local {
                let path = home.junit(queue_id);
                let written = db::blocking(move || {
                    std::fs::write(&path, xml).map_err(|e| Error::io(&path, e))
                });
                if let Err(e) = written.await {
                    tracing::error!(error = %e, "cannot write junit.xml");
                }
            }
        }
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "cannot read the queue for junit.xml"),
    }
    if !keep_local {
        if shipped {
            remove_queue_dir(home, queue_id).await;
        } else {
            tracing::warn!("the queue's logs are not all stored; its folder stays");
        }
    }
    recorded
}

/// Removes a queue's folder on this host (its logs are in the database).
pub async fn remove_queue_dir(home: &Home, queue_id: &str) {
    let dir = home.queue_dir(queue_id);
    if let Err(e) = db::blocking(move || remove_dir(&dir)).await {
        tracing::error!(error = %e, "cannot remove the queue's folder");
    }
}

/// Removes the build directory of every checkout of worker `worker_id`'s
/// slots: at start nothing of this worker runs, and a queue it ran before
/// a crash (or a kill) did not clean up after itself.
pub async fn sweep_build_dirs(home: &Home, worker_id: &str) {
    let dir = home.worker_work_dir(worker_id);
    let swept = db::blocking(move || {
        let Ok(slots) = std::fs::read_dir(&dir) else {
            return Ok(());
        };
        for slot in slots.flatten() {
            let Ok(repos) = std::fs::read_dir(slot.path()) else {
                continue;
            };
            for repo in repos.flatten() {
                remove_dir(&repo.path().join(BUILD_DIR))?;
            }
        }
        Ok(())
    });
    if let Err(e) = swept.await {
        tracing::warn!(error = %e, "cannot remove leftover build directories");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_leased_once_and_given_back_when_dropped() {
        let pool = SlotPool::new(2);
        let a = pool.take().unwrap();
        let b = pool.take().unwrap();
        assert_eq!((a.index(), b.index()), (0, 1));
        assert!(pool.take().is_none());
        drop(a);
        assert_eq!(pool.take().unwrap().index(), 0);
    }

    #[tokio::test]
    async fn a_used_lease_wakes_the_claim_loop_and_an_unused_one_does_not() {
        let pool = SlotPool::new(1);
        pool.take().unwrap().unused();
        let quiet = tokio::time::timeout(std::time::Duration::from_millis(50), pool.freed());
        assert!(quiet.await.is_err(), "nothing to claim for");
        drop(pool.take().unwrap());
        let woken = tokio::time::timeout(std::time::Duration::from_secs(5), pool.freed());
        assert!(woken.await.is_ok());
    }

    #[test]
    fn a_free_slot_holding_the_repository_is_preferred() {
        let pool = SlotPool::new(3);
        let mut first = pool.take().unwrap();
        let mut second = pool.take().unwrap();
        first.prefer("fw");
        second.prefer("other");
        assert_eq!((first.index(), second.index()), (0, 1));
        drop(second);
        drop(first);
        // Slot 0 is the lowest, but slot 1 holds "other".
        let mut next = pool.take().unwrap();
        assert_eq!(next.index(), 0);
        next.prefer("other");
        assert_eq!(next.index(), 1);
        // Slot 0 was given back by the move.
        let mut fw = pool.take().unwrap();
        fw.prefer("fw");
        assert_eq!(fw.index(), 0);
        // A repository no slot holds stays where it is.
        let mut new = pool.take().unwrap();
        new.prefer("new");
        assert_eq!(new.index(), 2);
        assert!(pool.take().is_none());
    }
}
