//! Git repositories for the farms: the lx106 fixture, or a small one whose
//! scenarios are `<run>` commands, and commits of hostile content.
//! No configuration of this machine takes part (like make-repo.sh).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::farm::repo_root;

/// `scenarios/quick.xml`: one command that passes at once.
pub const QUICK: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<scenario name="quick" timeout="30">
  <test name="true" timeout="10">
    <run>true</run>
  </test>
</scenario>
"#;

/// `scenarios/chatty.xml`: a line every 20 ms for a minute, so a queue runs
/// long and its log keeps growing.
pub const CHATTY: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<scenario name="chatty" timeout="300">
  <test name="chatter" timeout="240">
    <run>i=0; while [ $i -lt 3000 ]; do echo "chatty line $i of the queue that never stops talking"; i=$((i+1)); sleep 0.02; done</run>
  </test>
</scenario>
"#;

/// What a file in a commit is.
#[derive(Debug, Clone)]
pub enum Content {
    Text(String),
    /// A symbolic link to this target.
    Link(String),
}

/// A non-bare repository the farm's config names as its remote.
#[derive(Debug, Clone)]
pub struct Repo {
    pub path: PathBuf,
}

impl Repo {
    /// The lx106 firmware fixture (`tests/fixtures/make-repo.sh`).
    pub fn fixture(path: &Path) -> Repo {
        let made = Command::new("bash")
            .arg(repo_root().join("tests/fixtures/make-repo.sh"))
            .arg(path)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(made.success(), "make-repo.sh failed");
        Repo {
            path: path.to_owned(),
        }
    }

    /// Branch `main` with `scenarios/quick.xml` and `scenarios/chatty.xml`.
    pub fn small(path: &Path) -> Repo {
        std::fs::create_dir_all(path).unwrap();
        let repo = Repo {
            path: path.to_owned(),
        };
        repo.git(&["init", "-q", "-b", "main"]);
        repo.write(&[
            ("scenarios/quick.xml", Content::Text(QUICK.into())),
            ("scenarios/chatty.xml", Content::Text(CHATTY.into())),
            (
                "README.md",
                Content::Text("A small repository for fault tests.\n".into()),
            ),
        ]);
        repo.git(&["add", "-A"]);
        repo.git(&["commit", "-q", "--no-verify", "-m", "Small repository"]);
        repo
    }

    pub fn git(&self, args: &[&str]) {
        let status = Command::new("git")
            .arg("-C")
            .arg(&self.path)
            .args(["-c", "commit.gpgsign=false", "-c", "core.autocrlf=false"])
            .args(args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_AUTHOR_NAME", "Faults")
            .env("GIT_AUTHOR_EMAIL", "faults@testarena.invalid")
            .env("GIT_COMMITTER_NAME", "Faults")
            .env("GIT_COMMITTER_EMAIL", "faults@testarena.invalid")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE")
            .env_remove("GIT_INDEX_FILE")
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "git {args:?} failed");
    }

    fn write(&self, files: &[(&str, Content)]) {
        for (name, content) in files {
            let path = self.path.join(name);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).unwrap();
            }
            if std::fs::symlink_metadata(&path).is_ok() {
                std::fs::remove_file(&path).unwrap();
            }
            match content {
                Content::Text(text) => std::fs::write(&path, text).unwrap(),
                Content::Link(target) => std::os::unix::fs::symlink(target, &path).unwrap(),
            }
        }
    }

    /// Commits `files` on `branch` (made from `main` when new), then goes
    /// back to `main`.
    pub fn commit(&self, branch: &str, files: &[(&str, Content)]) {
        let exists = Command::new("git")
            .arg("-C")
            .arg(&self.path)
            .args(["rev-parse", "--verify", "--quiet"])
            .arg(format!("refs/heads/{branch}"))
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success();
        if exists {
            self.git(&["checkout", "-q", branch]);
        } else {
            self.git(&["checkout", "-q", "-b", branch, "main"]);
        }
        self.write(files);
        self.git(&["add", "-A"]);
        self.git(&[
            "commit",
            "-q",
            "--no-verify",
            "-m",
            &format!("Change {branch}"),
        ]);
        self.git(&["checkout", "-q", "main"]);
    }
}
