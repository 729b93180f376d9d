//! Git repositories for farms: the example firmware
//! (`tests/fixtures/make-repo.sh`, one branch per behaviour), a small one
//! whose scenarios are `<run>` commands, and commits made on top of them.
//! No git configuration of this machine takes part (like make-repo.sh).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Error, IoContext as _, Result};

/// `scenarios/quick.xml` of the small repository: one command that passes at once.
pub const QUICK: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<scenario name="quick" timeout="30">
  <test name="true" timeout="10">
    <run>true</run>
  </test>
</scenario>
"#;

/// `scenarios/chatty.xml` of the small repository: a line every 20 ms for
/// a minute, so a queue runs long and its log keeps growing.
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

/// A non-bare repository (a farm's config names it as a remote).
#[derive(Debug, Clone)]
pub struct Repo {
    pub path: PathBuf,
}

/// Makes the example firmware repository at `dest` (an empty or missing
/// directory) with `tests/fixtures/make-repo.sh`.
pub fn make_fixture(dest: &Path) -> Result<()> {
    let script = crate::workspace_root().join("tests/fixtures/make-repo.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg(dest)
        .stdin(Stdio::null())
        .output()
        .what(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        return Err(Error::Command {
            what: format!("make-repo.sh {}", dest.display()),
            status: out.status,
            output: format!("\n{}", String::from_utf8_lossy(&out.stderr)),
        });
    }
    Ok(())
}

impl Repo {
    /// The example firmware: `main` passes; `fail`, `crash`, `hang`,
    /// `build-error`, `flood` and `feature/v1.2-dots` each add one commit.
    pub fn fixture(path: &Path) -> Result<Repo> {
        make_fixture(path)?;
        Ok(Repo {
            path: path.to_owned(),
        })
    }

    /// Branch `main` with `scenarios/quick.xml` and `scenarios/chatty.xml`.
    pub fn small(path: &Path) -> Result<Repo> {
        std::fs::create_dir_all(path).what(|| format!("creating {}", path.display()))?;
        let repo = Repo {
            path: path.to_owned(),
        };
        repo.try_git(&["init", "-q", "-b", "main"])?;
        repo.write(&[
            ("scenarios/quick.xml", Content::Text(QUICK.into())),
            ("scenarios/chatty.xml", Content::Text(CHATTY.into())),
            (
                "README.md",
                Content::Text("A small repository for fault tests.\n".into()),
            ),
        ])?;
        repo.try_git(&["add", "-A"])?;
        repo.try_git(&["commit", "-q", "--no-verify", "-m", "Small repository"])?;
        Ok(repo)
    }

    /// An existing repository.
    pub fn at(path: &Path) -> Repo {
        Repo {
            path: path.to_owned(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("git");
        cmd.arg("-C")
            .arg(&self.path)
            .args(["-c", "commit.gpgsign=false", "-c", "core.autocrlf=false"])
            .args(args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_AUTHOR_NAME", "TestArena Test Kit")
            .env("GIT_AUTHOR_EMAIL", "testkit@testarena.invalid")
            .env("GIT_COMMITTER_NAME", "TestArena Test Kit")
            .env("GIT_COMMITTER_EMAIL", "testkit@testarena.invalid")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE")
            .env_remove("GIT_INDEX_FILE")
            .stdin(Stdio::null());
        cmd
    }

    /// `git args…` in the repository; its standard output.
    pub fn try_git(&self, args: &[&str]) -> Result<String> {
        let out = self
            .command(args)
            .output()
            .what(|| format!("running git {args:?}"))?;
        if !out.status.success() {
            return Err(Error::Command {
                what: format!("git {args:?}"),
                status: out.status,
                output: format!("\n{}", String::from_utf8_lossy(&out.stderr)),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// [`Repo::try_git`] that panics.
    pub fn git(&self, args: &[&str]) -> String {
        crate::error::or_panic(self.try_git(args))
    }

    /// The full sha `rev` names (a branch, a tag, `main~1`).
    pub fn rev_parse(&self, rev: &str) -> String {
        let spec = format!("{rev}^{{commit}}");
        self.git(&["rev-parse", "--verify", "--quiet", &spec])
            .trim()
            .to_owned()
    }

    fn write(&self, files: &[(&str, Content)]) -> Result<()> {
        for (name, content) in files {
            let path = self.path.join(name);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).what(|| format!("creating {}", dir.display()))?;
            }
            if std::fs::symlink_metadata(&path).is_ok() {
                std::fs::remove_file(&path).what(|| format!("removing {}", path.display()))?;
            }
            match content {
                Content::Text(text) => std::fs::write(&path, text),
                Content::Link(target) => std::os::unix::fs::symlink(target, &path),
            }
            .what(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    }

    /// Commits `files` on `branch` (made from `main` when new), goes back
    /// to `main`, and returns the new commit's sha.
    pub fn commit(&self, branch: &str, files: &[(&str, Content)]) -> String {
        let exists = self
            .command(&[
                "rev-parse",
                "--verify",
                "--quiet",
                &format!("refs/heads/{branch}"),
            ])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if exists {
            self.git(&["checkout", "-q", branch]);
        } else {
            self.git(&["checkout", "-q", "-b", branch, "main"]);
        }
        crate::error::or_panic(self.write(files));
        self.git(&["add", "-A"]);
        self.git(&[
            "commit",
            "-q",
            "--no-verify",
            "-m",
            &format!("Change {branch}"),
        ]);
        let sha = self.rev_parse("HEAD");
        self.git(&["checkout", "-q", "main"]);
        sha
    }
}
