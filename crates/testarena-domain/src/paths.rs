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

    /// `work/<worker_id>/`: the checkouts of one worker's slots.
    pub fn worker_work_dir(&self, worker_id: &str) -> PathBuf {
        self.root.join("work").join(worker_id)
    }

    /// `work/<worker_id>/<slot>/<repo>/`: the checkout of repository `repo`
    /// that slot `slot` (0-based) of worker `worker_id` keeps and moves from
    /// queue to queue: the `{workspace}` of its queues. Worker ids and
    /// repository names are checked path components, so two workers on one
    /// home, or two slots of one worker, never share a tree.
    pub fn workspace(&self, worker_id: &str, slot: usize, repo: &str) -> PathBuf {
        self.worker_work_dir(worker_id)
            .join(slot.to_string())
            .join(repo)
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

/// Why [`confined_file`] refused a path.
#[derive(Debug, thiserror::Error)]
pub enum Confinement {
    #[error("not found")]
    NotFound,
    #[error("leads out of its folder")]
    Outside,
    #[error("not a regular file")]
    NotAFile,
    #[error("{0}")]
    Io(std::io::Error),
}

/// Resolves `rel` inside `root` as a regular file, following symbolic links
/// only while they stay inside `root`: the one confinement check for files
/// named by users or repositories (log paths, scenario files in a checkout).
pub fn confined_file(root: &Path, rel: &str) -> Result<(PathBuf, std::fs::Metadata), Confinement> {
    let io = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::NotFound => Confinement::NotFound,
        _ => Confinement::Io(e),
    };
    let root = root.canonicalize().map_err(io)?;
    let real = root.join(rel).canonicalize().map_err(io)?;
    if !real.starts_with(&root) {
        return Err(Confinement::Outside);
    }
    let meta = std::fs::metadata(&real).map_err(io)?;
    if !meta.is_file() {
        return Err(Confinement::NotAFile);
    }
    Ok((real, meta))
}

/// Every regular file under a queue's folder `dir`, as UTF-8 paths
/// relative to it, sorted, with its metadata: what the app lists as the
/// queue's logs, what a worker ships to the database and what
/// `copy-database` copies. Symbolic links and names that are not UTF-8 are
/// left out.
pub fn queue_files(dir: &Path) -> Vec<(String, std::fs::Metadata)> {
    fn visit(root: &Path, dir: &Path, out: &mut Vec<(String, std::fs::Metadata)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            let path = entry.path();
            if meta.is_dir() {
                visit(root, &path, out);
            } else if meta.is_file()
                && let Ok(rel) = path.strip_prefix(root)
                && let Some(rel) = rel.to_str()
            {
                out.push((rel.to_owned(), meta));
            }
        }
    }
    let mut out = Vec::new();
    visit(dir, dir, &mut out);
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_confined_to_their_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/a.log"), "a").unwrap();
        std::fs::write(dir.path().join("secret"), "s").unwrap();
        std::os::unix::fs::symlink("../secret", root.join("out")).unwrap();
        std::os::unix::fs::symlink("sub/a.log", root.join("in")).unwrap();
        let (path, meta) = confined_file(&root, "sub/a.log").unwrap();
        assert!(path.ends_with("sub/a.log") && meta.len() == 1);
        assert!(confined_file(&root, "in").is_ok());
        assert!(matches!(
            confined_file(&root, "out"),
            Err(Confinement::Outside)
        ));
        assert!(matches!(
            confined_file(&root, "../secret"),
            Err(Confinement::Outside)
        ));
        assert!(matches!(
            confined_file(&root, "sub"),
            Err(Confinement::NotAFile)
        ));
        assert!(matches!(
            confined_file(&root, "nope"),
            Err(Confinement::NotFound)
        ));
    }

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
            home.workspace("host-1", 1, "firmware"),
            Path::new("/testarena/work/host-1/1/firmware")
        );
        assert_eq!(home.git_cache(), Path::new("/testarena/cache/git"));
    }
}
