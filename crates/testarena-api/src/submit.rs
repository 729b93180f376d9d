//! Checking a queue before anything is stored: the repo and target exist in
//! the config, the branch exists (fetched through the git mirror), the
//! commit to run is pinned (the branch's tip, or the `commit` named, which
//! must be on the branch), and every scenario file exists at that commit and
//! parses. A typo is a 422 now, not a queue that errors an hour later, and
//! the worker runs exactly the commit that was checked.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use testarena_domain::api::CreateQueue;
use testarena_domain::config::Config;
use testarena_domain::git::{GitError, MIN_ABBREV, Mirror};
use testarena_domain::models::{NewQueue, NewTask};
use testarena_domain::scenario::{self, MAX_SCENARIO_BYTES};
use testarena_domain::{store, validate};

use crate::error::ApiError;

/// How long a submission may wait for the repository to be fetched.
const FETCH_TIMEOUT: Duration = Duration::from_secs(60);
/// The most tasks one queue may have.
pub const MAX_TASKS: usize = 100;
/// Priorities outside this range are refused.
pub const PRIORITY_RANGE: std::ops::RangeInclusive<i32> = -1000..=1000;
/// The longest queue timeout a submission may ask for.
pub const MAX_TIMEOUT_S: i32 = 7 * 24 * 3600;

/// A checked submission, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    pub queue: NewQueue,
    pub tasks: Vec<NewTask>,
}

impl Checked {
    /// The same submission under a fresh generated queue id (a generated
    /// id can collide: four random hex digits per second). Task ids made
    /// from the queue id (`<queue id>.<n>`) follow it; ids the client
    /// chose stay.
    pub fn renamed(mut self) -> Checked {
        let old = std::mem::replace(&mut self.queue.id, new_queue_id());
        for task in &mut self.tasks {
            if let Some(n) = task.id.strip_prefix(&format!("{old}.")) {
                task.id = format!("{}.{n}", self.queue.id);
            }
        }
        self
    }
}

/// Coalesces mirror fetches: a submission that arrives while another
/// fetch of the same repository is running waits for the lock, then skips
/// its own fetch if a fetch *started* after it arrived (that fetch saw
/// everything pushed before this submission).
///
/// A mirror's first clone can run in a child process ([`Fetcher::clone_in_child`]):
/// libgit2 indexing a large pack leaves the allocator of the process that
/// did it holding tens of MiB, which the app would keep for its lifetime.
#[derive(Debug, Default)]
pub struct Fetcher {
    repos: Mutex<HashMap<String, Arc<Mutex<Option<Instant>>>>>,
    child: OnceLock<ChildFetch>,
}

/// How to run `testarena-app fetch-mirror` for a first clone.
#[derive(Debug, Clone)]
pub struct ChildFetch {
    /// The `testarena-app` binary.
    pub exe: PathBuf,
    /// Its `--config`, when the app was given one (the environment, with
    /// `TESTARENA_CONFIG` and the overrides, is inherited).
    pub config: Option<PathBuf>,
}

impl Fetcher {
    /// From now on, clone missing mirrors in a child process.
    pub fn clone_in_child(&self, child: ChildFetch) {
        let _ = self.child.set(child);
    }

    /// Fetches the mirror of repository `name` unless a fetch that started
    /// after `arrived` has done it already (503 when it fails).
    pub fn fetch(&self, mirror: &Mirror, name: &str, arrived: Instant) -> Result<(), ApiError> {
        let slot = {
            let mut repos = self
                .repos
                .lock()
                .map_err(|_| ApiError::internal("fetcher lock poisoned"))?;
            repos.entry(name.to_owned()).or_default().clone()
        };
        let mut last_started = slot
            .lock()
            .map_err(|_| ApiError::internal("fetcher lock poisoned"))?;
        if last_started.is_some_and(|started| started >= arrived) {
            return Ok(());
        }
        let started = Instant::now();
        if let Some(child) = self.child.get()
            && std::fs::symlink_metadata(mirror.path()).is_err()
        {
            child.fetch(name)?;
            *last_started = Some(started);
            return Ok(());
        }
        mirror.fetch(FETCH_TIMEOUT).map_err(|e| match e {
            GitError::Timeout { .. } => {
                ApiError::Unavailable(format!("fetching repository {name:?} timed out: {e}"))
            }
            other => ApiError::Unavailable(format!("cannot fetch repository {name:?}: {other}")),
        })?;
        *last_started = Some(started);
        Ok(())
    }
}

impl ChildFetch {
    /// Runs `testarena-app [--config C] fetch-mirror NAME` and waits for it
    /// at most [`FETCH_TIMEOUT`] (and a little for start-up), killing it
    /// past that. Its last line of standard error is the reason it failed.
    fn fetch(&self, name: &str) -> Result<(), ApiError> {
        let mut command = Command::new(&self.exe);
        if let Some(config) = &self.config {
            command.arg("--config").arg(config);
        }
        let mut child = command
            .args(["fetch-mirror", name])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| ApiError::internal(format!("cannot start {}: {e}", self.exe.display())))?;
        let deadline = Instant::now() + FETCH_TIMEOUT + Duration::from_secs(5);
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(ApiError::Unavailable(format!(
                        "fetching repository {name:?} timed out after {} s",
                        FETCH_TIMEOUT.as_secs()
                    )));
                }
                Err(e) => return Err(ApiError::internal(format!("waiting for the fetch: {e}"))),
            }
        };
        if status.success() {
            return Ok(());
        }
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            use std::io::Read as _;
            let _ = pipe.by_ref().take(64 * 1024).read_to_string(&mut stderr);
        }
        let reason = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("the fetch failed")
            .trim_start_matches("Error: ");
        Err(ApiError::Unavailable(format!(
            "cannot fetch repository {name:?}: {reason}"
        )))
    }
}

/// Clones or fetches the mirror of the configured repository `name`, in
/// this process: what `testarena-app fetch-mirror` runs.
pub fn fetch_mirror(config: &Config, name: &str) -> Result<(), GitError> {
    let repo = config.repo(Some(name)).ok_or_else(|| GitError::Git {
        op: "fetch",
        message: format!("no repository {name:?} in the config"),
    })?;
    Mirror::new(&config.home.join("cache").join("git"), repo).fetch(FETCH_TIMEOUT)?;
    Ok(())
}

/// A new queue id: `YYYYMMDD-HHMMSS-xxxx` (UTC time, 4 random hex digits).
pub fn new_queue_id() -> String {
    let [a, b] = testarena_domain::secret::random_bytes::<2>();
    format!(
        "{}-{a:02x}{b:02x}",
        chrono::Utc::now().format("%Y%m%d-%H%M%S")
    )
}

/// Checks the fields that need no I/O and fills in defaults.
pub fn check_fields(config: &Config, req: &CreateQueue, owner: &str) -> Result<Checked, ApiError> {
    validate::branch("branch", &req.branch)?;
    if let Some(commit) = &req.commit {
        let hex = (MIN_ABBREV..=40).contains(&commit.len())
            && commit.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex {
            return Err(ApiError::validation(
                "commit",
                format!("a commit id is {MIN_ABBREV} to 40 hex digits"),
            ));
        }
    }
    let repo = config
        .repo(req.repo.as_deref())
        .ok_or_else(|| match &req.repo {
            Some(_) => ApiError::validation("repo", "no such repository in the config"),
            None => ApiError::validation("repo", "no repository is configured"),
        })?;
    let (target, _) = config
        .target(req.target.as_deref())
        .ok_or_else(|| ApiError::validation("target", "no such target in the config"))?;
    let id = match &req.id {
        Some(id) => {
            validate::id("id", id)?;
            id.clone()
        }
        None => new_queue_id(),
    };
    let tasks: Vec<NewTask> = match (&req.scenarios, &req.tasks) {
        (Some(_), Some(_)) => {
            return Err(ApiError::validation(
                "tasks",
                "give either scenarios or tasks, not both",
            ));
        }
        (None, None) => {
            return Err(ApiError::validation(
                "scenarios",
                "give at least one scenario",
            ));
        }
        (Some(entries), None) => (1..)
            .zip(entries)
            .map(|(n, entry)| NewTask {
                id: format!("{id}.{n}"),
                scenario: entry.path().to_owned(),
                only: entry.only().map(<[String]>::to_vec),
            })
            .collect(),
        (None, Some(pairs)) => pairs
            .iter()
            .map(|(task, path)| NewTask {
                id: task.clone(),
                scenario: path.clone(),
                only: None,
            })
            .collect(),
    };
    let field = if req.tasks.is_some() {
        "tasks"
    } else {
        "scenarios"
    };
    if tasks.is_empty() {
        return Err(ApiError::validation(field, "give at least one scenario"));
    }
    if tasks.len() > MAX_TASKS {
        return Err(ApiError::validation(
            field,
            format!("at most {MAX_TASKS} tasks per queue"),
        ));
    }
    for (i, task) in tasks.iter().enumerate() {
        validate::id(&format!("{field}[{i}].id"), &task.id)?;
        validate::scenario_path(&format!("{field}[{i}]"), &task.scenario)?;
        crate::subsets::check_only_fields(&format!("{field}[{i}].only"), task.only.as_deref())?;
    }
    let priority = req.priority.unwrap_or(0);
    if !PRIORITY_RANGE.contains(&priority) {
        return Err(ApiError::validation(
            "priority",
            format!(
                "must be between {} and {}",
                PRIORITY_RANGE.start(),
                PRIORITY_RANGE.end()
            ),
        ));
    }
    if let Some(t) = req.timeout_s
        && !(1..=MAX_TIMEOUT_S).contains(&t)
    {
        return Err(ApiError::validation(
            "timeout_s",
            format!("must be between 1 and {MAX_TIMEOUT_S} seconds"),
        ));
    }
    Ok(Checked {
        queue: NewQueue {
            id,
            repo: repo.name.clone(),
            branch: req.branch.clone(),
            // Pinned by `check_repository`; a request's abbreviation until then.
            commit_sha: req.commit.clone(),
            target: target.to_owned(),
            owner: owner.to_owned(),
            priority,
            timeout_s: req.timeout_s,
            created_at: store::now(),
            no_cache: req.no_cache,
        },
        tasks,
    })
}

/// Checks the branch and the scenario files against the repository and
/// pins the commit to run (`queue.commit_sha`, 40 hex digits). Blocking
/// (git2): run it on the blocking pool.
pub fn check_repository(
    config: &Config,
    fetcher: &Fetcher,
    checked: &mut Checked,
    arrived: Instant,
) -> Result<(), ApiError> {
    let repo = config
        .repo(Some(&checked.queue.repo))
        .ok_or_else(|| ApiError::validation("repo", "no such repository in the config"))?;
    let mirror = Mirror::new(&config.home.join("cache").join("git"), repo);
    fetcher.fetch(&mirror, &repo.name, arrived)?;
    let branch = &checked.queue.branch;
    let commit = mirror.resolve_branch(branch).map_err(|e| match e {
        GitError::BranchNotFound { .. } => ApiError::validation(
            "branch",
            format!("branch {branch:?} does not exist in {}", repo.name),
        ),
        other => ApiError::Unavailable(other.to_string()),
    })?;
    let commit = match checked.queue.commit_sha.as_deref() {
        None => commit,
        Some(rev) => mirror.resolve_commit(branch, rev).map_err(|e| match e {
            GitError::CommitNotFound { .. } => ApiError::validation(
                "commit",
                format!(
                    "commit {rev:?} is not on branch {branch:?} of {}",
                    repo.name
                ),
            ),
            other => ApiError::Unavailable(other.to_string()),
        })?,
    };
    let at = if checked.queue.commit_sha.is_some() {
        format!("at commit {}", &commit[..12])
    } else {
        format!("on branch {branch:?}")
    };
    let field = |i: usize| format!("scenarios[{i}]");
    for (i, task) in checked.tasks.iter().enumerate() {
        let bytes = mirror
            .read_file(&commit, &task.scenario, MAX_SCENARIO_BYTES)
            .map_err(|e| match e {
                GitError::FileNotFound { .. } => {
                    ApiError::validation(field(i), format!("{} does not exist {at}", task.scenario))
                }
                GitError::NotAFile { .. } | GitError::TooLarge { .. } => {
                    ApiError::validation(field(i), e.to_string())
                }
                other => ApiError::Unavailable(other.to_string()),
            })?;
        let parsed = scenario::parse(&task.scenario, &bytes)
            .map_err(|e| ApiError::validation(field(i), e.to_string()))?;
        crate::subsets::check_only_names(&field(i), task, &parsed)?;
    }
    checked.queue.commit_sha = Some(commit);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(id: &str, tasks: &[&str]) -> Checked {
        Checked {
            queue: NewQueue {
                id: id.to_owned(),
                repo: "r".into(),
                branch: "main".into(),
                commit_sha: None,
                target: "t".into(),
                owner: "ann".into(),
                priority: 0,
                timeout_s: None,
                created_at: store::now(),
                no_cache: false,
            },
            tasks: tasks
                .iter()
                .map(|t| NewTask {
                    id: (*t).to_owned(),
                    scenario: "s.xml".into(),
                    only: None,
                })
                .collect(),
        }
    }

    #[test]
    fn a_renamed_submission_takes_its_generated_task_ids_along() {
        let old = checked("20260101-000000-abcd", &["20260101-000000-abcd.1", "mine"]);
        let new = old.clone().renamed();
        // A fresh id (now's time), which may only equal the old one by chance.
        assert_eq!(new.queue.id.len(), old.queue.id.len());
        assert!(validate::is_valid_id(&new.queue.id), "{}", new.queue.id);
        assert_eq!(new.tasks[0].id, format!("{}.1", new.queue.id));
        assert_eq!(new.tasks[1].id, "mine", "ids the client chose stay");
        assert_eq!(new.queue.branch, old.queue.branch);
    }
}
