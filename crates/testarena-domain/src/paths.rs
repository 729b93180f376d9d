//! The layout of files under `home` (DESIGN section 3). Every path the
//! daemons use is built here, from ids already checked by [`crate::validate`].

use std::path::{Path, PathBuf};

/// The directories and files of one TestArena home.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `queues/`: one folder of logs and results per queue.
    pub fn queues_dir(&self) -> PathBuf {
        self.root.join("queues")
    }

    /// `queues/<queue_id>/`.
    pub fn queue_dir(&self, queue_id: &str) -> PathBuf {
        self.queues_dir().join(queue_id)
    }

    /// `queues/<queue_id>/queue.log`: the worker's timeline.
    pub fn queue_log(&self, queue_id: &str) -> PathBuf {
        self.queue_dir(queue_id).join("queue.log")
    }

    /// `queues/<queue_id>/build.log`.
    pub fn build_log(&self, queue_id: &str) -> PathBuf {
        self.queue_dir(queue_id).join("build.log")
    }

    /// `queues/<queue_id>/junit.xml`.
    pub fn junit(&self, queue_id: &str) -> PathBuf {
        self.queue_dir(queue_id).join("junit.xml")
    }

    /// `queues/<queue_id>/tasks/<task_id>/`.
    pub fn task_dir(&self, queue_id: &str, task_id: &str) -> PathBuf {
        self.queue_dir(queue_id).join("tasks").join(task_id)
    }

    /// `queues/<queue_id>/tasks/<task_id>/<test>.log`.
    pub fn test_log(&self, queue_id: &str, task_id: &str, test: &str) -> PathBuf {
        self.task_dir(queue_id, task_id).join(format!("{test}.log"))
    }

    /// `queues/<queue_id>/tasks/<task_id>/<test>.html`.
    pub fn test_html(&self, queue_id: &str, task_id: &str, test: &str) -> PathBuf {
        self.task_dir(queue_id, task_id)
            .join(format!("{test}.html"))
    }

    /// `work/<queue_id>/`: the checkout and build, removed when the queue ends.
    pub fn workspace(&self, queue_id: &str) -> PathBuf {
        self.root.join("work").join(queue_id)
    }

    /// `cache/git/`: bare mirrors, one per repository.
    pub fn git_cache(&self) -> PathBuf {
        self.root.join("cache").join("git")
    }

    /// The cookie-signing key of the app (0600).
    pub fn cookie_key(&self) -> PathBuf {
        self.root.join("cookie.key")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_the_design() {
        let home = Home::new("/testarena");
        assert_eq!(
            home.queue_log("q1"),
            Path::new("/testarena/queues/q1/queue.log")
        );
        assert_eq!(
            home.build_log("q1"),
            Path::new("/testarena/queues/q1/build.log")
        );
        assert_eq!(
            home.junit("q1"),
            Path::new("/testarena/queues/q1/junit.xml")
        );
        assert_eq!(
            home.test_log("q1", "t1", "unit"),
            Path::new("/testarena/queues/q1/tasks/t1/unit.log")
        );
        assert_eq!(
            home.test_html("q1", "t1", "unit"),
            Path::new("/testarena/queues/q1/tasks/t1/unit.html")
        );
        assert_eq!(home.workspace("q1"), Path::new("/testarena/work/q1"));
        assert_eq!(home.git_cache(), Path::new("/testarena/cache/git"));
    }
}
