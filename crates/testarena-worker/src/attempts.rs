//! The worker's side of attempts (DESIGN section 11, "Attempts"): the logs
//! an earlier attempt left in the queue's folder are moved to
//! `queues/<id>/attempts/<n>/` before the next attempt writes its own.
//!
//! The move is made by the worker that claims attempt `n + 1`, not by the
//! one that ended attempt `n`: once the retry is recorded any worker may
//! claim the queue at once, and a lost worker ends nothing itself. The
//! timeline (`queue.log`) is not moved: it tells the whole queue's story,
//! every attempt in turn.

use std::path::Path;

use testarena_domain::paths::Home;

use crate::{Error, Result};

/// The files of one attempt in a queue's folder, moved when it ends.
const ATTEMPT_FILES: [&str; 3] = ["build.log", "tasks", "junit.xml"];

/// Moves what attempt `attempt` left in `queue_id`'s folder into
/// `attempts/<attempt>/`. Files moved before (by a run that stopped
/// midway) stay where they are. Returns the names moved.
pub fn archive(home: &Home, queue_id: &str, attempt: i32) -> Result<Vec<&'static str>> {
    let dir = home.queue_dir(queue_id);
    let dest = dir.join("attempts").join(attempt.to_string());
    let mut moved = Vec::new();
    for name in ATTEMPT_FILES {
        let from = dir.join(name);
        if !exists(&from) || exists(&dest.join(name)) {
            continue;
        }
        std::fs::create_dir_all(&dest).map_err(|e| Error::io(&dest, e))?;
        std::fs::rename(&from, dest.join(name)).map_err(|e| Error::io(&from, e))?;
        moved.push(name);
    }
    Ok(moved)
}

fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// What the claim's line in the timeline adds for a later attempt.
pub fn attempt_suffix(attempt: i32) -> String {
    if attempt > 1 {
        format!(", attempt {attempt}")
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attempt_s_logs_move_under_its_number() {
        let tmp = tempfile::tempdir().unwrap();
        let home = Home::new(tmp.path());
        let dir = home.queue_dir("q");
        std::fs::create_dir_all(dir.join("tasks/q.1")).unwrap();
        std::fs::write(dir.join("tasks/q.1/unit.log"), "one").unwrap();
        std::fs::write(dir.join("build.log"), "built").unwrap();
        std::fs::write(dir.join("queue.log"), "timeline").unwrap();
        assert_eq!(archive(&home, "q", 1).unwrap(), ["build.log", "tasks"]);
        let a1 = dir.join("attempts/1");
        assert_eq!(
            std::fs::read_to_string(a1.join("build.log")).unwrap(),
            "built"
        );
        assert_eq!(
            std::fs::read_to_string(a1.join("tasks/q.1/unit.log")).unwrap(),
            "one"
        );
        assert!(dir.join("queue.log").exists(), "the timeline stays");
        assert!(!dir.join("build.log").exists());
        // Again (a second claim of the same attempt): nothing to move, and
        // what was moved is not overwritten.
        std::fs::write(dir.join("build.log"), "attempt 2").unwrap();
        assert!(archive(&home, "q", 1).unwrap().is_empty());
        assert_eq!(
            std::fs::read_to_string(a1.join("build.log")).unwrap(),
            "built"
        );
        assert!(archive(&home, "nothing-here", 1).unwrap().is_empty());
    }
}
