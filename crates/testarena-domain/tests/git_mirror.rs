//! The git mirror against real repositories made with the `git` command in
//! temporary directories (fixed identity, no global or system git config).
#![expect(
    clippy::unwrap_used,
    reason = "test helpers, like the tests, panic on a failed setup"
)]

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use tempfile::TempDir;
use testarena_domain::config::RepoConfig;
use testarena_domain::git::{GitError, Mirror};

const TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `git` in `dir` and returns its trimmed stdout.
fn git(dir: &Path, args: &[&str]) -> String {
    git_with_input(dir, args, None)
}

fn git_with_input(dir: &Path, args: &[&str], input: Option<&[u8]>) -> String {
    let mut child = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.invalid")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.invalid")
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = input {
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A working repository on branch `main`, standing in for the remote.
struct Upstream {
    _dir: TempDir,
    path: PathBuf,
}

impl Upstream {
    fn new() -> Upstream {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("upstream");
        std::fs::create_dir(&path).unwrap();
        git(&path, &["init", "-q", "-b", "main"]);
        Upstream { _dir: dir, path }
    }

    /// Writes `files`, commits everything, returns the new commit id.
    fn commit(&self, files: &[(&str, &str)], message: &str) -> String {
        for (name, content) in files {
            let file = self.path.join(name);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, content).unwrap();
        }
        git(&self.path, &["add", "-A"]);
        git(
            &self.path,
            &["commit", "-q", "--allow-empty", "-m", message],
        );
        self.head()
    }

    fn head(&self) -> String {
        git(&self.path, &["rev-parse", "HEAD"])
    }

    fn url(&self) -> String {
        self.path.to_str().unwrap().to_owned()
    }
}

fn repo(url: &str) -> RepoConfig {
    RepoConfig {
        name: "firmware".into(),
        url: url.into(),
        ssh_key: None,
        known_hosts: None,
        token_env: None,
        ..Default::default()
    }
}

fn mirror_of(upstream: &Upstream) -> (TempDir, Mirror) {
    let cache = TempDir::new().unwrap();
    let mirror = Mirror::new(&cache.path().join("cache/git"), &repo(&upstream.url()));
    (cache, mirror)
}

#[test]
fn first_fetch_clones_then_fetches_are_incremental() {
    let up = Upstream::new();
    let c1 = up.commit(
        &[("README.md", "one\n"), ("src/main.c", "int main;\n")],
        "one",
    );
    let (_cache, mirror) = mirror_of(&up);
    assert!(!mirror.path().exists());

    let first = mirror.fetch(TIMEOUT).unwrap();
    assert!(first.cloned);
    assert!(first.received_objects >= 4, "{first:?}");
    assert!(mirror.path().join("HEAD").is_file());
    assert!(mirror.lock_path().is_file());
    assert!(
        mirror
            .path()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .ends_with(".git")
    );
    assert_eq!(mirror.resolve_branch("main").unwrap(), c1);

    let c2 = up.commit(&[("README.md", "two\n")], "two");
    let second = mirror.fetch(TIMEOUT).unwrap();
    assert!(!second.cloned);
    // The new commit, its tree and one blob; nothing already in the mirror.
    assert!((1..=3).contains(&second.received_objects), "{second:?}");
    assert_eq!(mirror.resolve_branch("main").unwrap(), c2);

    let third = mirror.fetch(TIMEOUT).unwrap();
    assert!(!third.cloned);
    assert_eq!(third.received_objects, 0);
}

#[test]
fn file_urls_work_too() {
    let up = Upstream::new();
    let c1 = up.commit(&[("a", "a")], "a");
    let cache = TempDir::new().unwrap();
    let mirror = Mirror::new(cache.path(), &repo(&format!("file://{}", up.url())));
    assert!(mirror.fetch(TIMEOUT).unwrap().cloned);
    assert_eq!(mirror.resolve_branch("main").unwrap(), c1);
}

#[test]
fn branches_resolve_and_deleted_ones_are_pruned() {
    let up = Upstream::new();
    let main = up.commit(&[("a.txt", "a")], "a");
    git(&up.path, &["checkout", "-q", "-b", "feature/v1.2-dots"]);
    let feature = up.commit(&[("b.txt", "b")], "b");
    git(&up.path, &["checkout", "-q", "main"]);
    let (_cache, mirror) = mirror_of(&up);
    mirror.fetch(TIMEOUT).unwrap();

    assert_eq!(mirror.resolve_branch("main").unwrap(), main);
    assert_eq!(mirror.resolve_branch("feature/v1.2-dots").unwrap(), feature);
    for missing in [
        "nope",
        "feature",
        "feature/v1.2",
        "",
        "../main",
        "main..x",
        "a\0b",
        "refs/heads/main",
    ] {
        assert!(
            matches!(
                mirror.resolve_branch(missing),
                Err(GitError::BranchNotFound { .. })
            ),
            "{missing:?}"
        );
    }

    git(&up.path, &["branch", "-q", "-D", "feature/v1.2-dots"]);
    mirror.fetch(TIMEOUT).unwrap();
    let err = mirror.resolve_branch("feature/v1.2-dots").unwrap_err();
    assert!(
        matches!(err, GitError::BranchNotFound { ref branch } if branch == "feature/v1.2-dots")
    );
    assert_eq!(mirror.resolve_branch("main").unwrap(), main);
}

#[test]
fn read_file_reads_regular_files_only() {
    let up = Upstream::new();
    let old = up.commit(
        &[
            ("scenarios/smoke.xml", "<scenario name=\"old\"/>"),
            ("big.bin", &"x".repeat(5000)),
        ],
        "old",
    );
    std::os::unix::fs::symlink("/etc/passwd", up.path.join("evil.xml")).unwrap();
    std::os::unix::fs::symlink("scenarios", up.path.join("linked")).unwrap();
    let new = up.commit(
        &[("scenarios/smoke.xml", "<scenario name=\"new\"/>")],
        "new",
    );
    // A submodule entry (gitlink) pointing at some commit.
    git(
        &up.path,
        &[
            "update-index",
            "--add",
            "--cacheinfo",
            &format!("160000,{old},sub"),
        ],
    );
    git(&up.path, &["commit", "-q", "-m", "submodule"]);
    let tip = up.head();
    let (_cache, mirror) = mirror_of(&up);
    mirror.fetch(TIMEOUT).unwrap();
    let max = 1 << 20;

    assert_eq!(
        mirror.read_file(&old, "scenarios/smoke.xml", max).unwrap(),
        b"<scenario name=\"old\"/>"
    );
    assert_eq!(
        mirror.read_file(&new, "scenarios/smoke.xml", max).unwrap(),
        b"<scenario name=\"new\"/>"
    );
    assert_eq!(
        mirror
            .read_file(&new, "./scenarios//smoke.xml", max)
            .unwrap(),
        b"<scenario name=\"new\"/>"
    );
    assert_eq!(mirror.read_file(&new, "big.bin", 5000).unwrap().len(), 5000);

    let is_not_found = |r| matches!(r, Err(GitError::FileNotFound { .. }));
    assert!(is_not_found(mirror.read_file(
        &new,
        "scenarios/none.xml",
        max
    )));
    assert!(is_not_found(mirror.read_file(&old, "evil.xml", max)));
    assert!(is_not_found(mirror.read_file(&new, "big.bin/x", max)));
    assert!(is_not_found(mirror.read_file(&new, "../etc/passwd", max)));
    assert!(is_not_found(mirror.read_file(&new, "a\0b", max)));

    let kind = |r: Result<Vec<u8>, GitError>| match r {
        Err(GitError::NotAFile { path, kind }) => format!("{path}: {kind}"),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        kind(mirror.read_file(&new, "scenarios", max)),
        "scenarios: directory"
    );
    assert_eq!(kind(mirror.read_file(&new, "", max)), ".: directory");
    assert_eq!(
        kind(mirror.read_file(&new, "evil.xml", max)),
        "evil.xml: symbolic link"
    );
    assert_eq!(
        kind(mirror.read_file(&new, "linked/smoke.xml", max)),
        "linked: symbolic link"
    );
    assert_eq!(kind(mirror.read_file(&tip, "sub", max)), "sub: submodule");
    assert_eq!(kind(mirror.read_file(&tip, "sub/x", max)), "sub: submodule");

    match mirror.read_file(&new, "big.bin", 4999) {
        Err(GitError::TooLarge { path, size, max }) => {
            assert_eq!((path.as_str(), size, max), ("big.bin", 5000, 4999))
        }
        other => panic!("{other:?}"),
    }
    for bad in ["0".repeat(40), old[..12].to_owned(), "zz".repeat(20)] {
        assert!(matches!(
            mirror.read_file(&bad, "big.bin", max),
            Err(GitError::CommitNotFound { .. })
        ));
    }
    // A tree id is not a commit.
    let tree = git(&up.path, &["rev-parse", &format!("{old}^{{tree}}")]);
    assert!(matches!(
        mirror.read_file(&tree, "big.bin", max),
        Err(GitError::CommitNotFound { .. })
    ));
}

#[test]
fn reading_before_the_first_fetch_says_so() {
    let up = Upstream::new();
    up.commit(&[("a", "a")], "a");
    let (_cache, mirror) = mirror_of(&up);
    match mirror.resolve_branch("main") {
        Err(GitError::Git { message, .. }) => assert!(message.contains("fetch first"), "{message}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn checkout_writes_the_tree_at_that_commit() {
    let up = Upstream::new();
    let old = up.commit(
        &[("README.md", "old\n"), ("src/app.c", "int app;\n")],
        "old",
    );
    std::os::unix::fs::symlink("README.md", up.path.join("link")).unwrap();
    let new = up.commit(&[("README.md", "new\n"), ("extra.txt", "extra\n")], "new");
    let (cache, mirror) = mirror_of(&up);
    mirror.fetch(TIMEOUT).unwrap();
    let work = cache.path().join("work");

    let a = work.join("q1");
    mirror.checkout(&old, &a).unwrap();
    assert_eq!(
        std::fs::read_to_string(a.join("README.md")).unwrap(),
        "old\n"
    );
    assert_eq!(
        std::fs::read_to_string(a.join("src/app.c")).unwrap(),
        "int app;\n"
    );
    assert!(!a.join("extra.txt").exists());
    assert_eq!(git(&a, &["rev-parse", "HEAD"]), old);
    assert_eq!(git(&a, &["status", "--porcelain"]), "");
    assert_eq!(git(&a, &["log", "--format=%s"]), "old");
    // Objects are borrowed from the mirror, not copied.
    let alternates = std::fs::read_to_string(a.join(".git/objects/info/alternates")).unwrap();
    assert_eq!(
        Path::new(alternates.trim()),
        std::fs::canonicalize(mirror.path().join("objects")).unwrap()
    );
    assert_eq!(
        std::fs::read_dir(a.join(".git/objects/pack"))
            .unwrap()
            .count(),
        0
    );

    // An existing empty directory is fine too.
    let b = work.join("q2");
    std::fs::create_dir_all(&b).unwrap();
    mirror.checkout(&new, &b).unwrap();
    assert_eq!(
        std::fs::read_to_string(b.join("README.md")).unwrap(),
        "new\n"
    );
    assert_eq!(
        std::fs::read_to_string(b.join("extra.txt")).unwrap(),
        "extra\n"
    );
    assert_eq!(
        std::fs::read_link(b.join("link")).unwrap(),
        Path::new("README.md")
    );
    assert_eq!(git(&b, &["rev-parse", "HEAD"]), new);
    assert_eq!(git(&b, &["status", "--porcelain"]), "");
    // The first checkout is untouched.
    assert_eq!(
        std::fs::read_to_string(a.join("README.md")).unwrap(),
        "old\n"
    );

    // An existing checkout is moved to the commit, not refused.
    assert!(mirror.checkout(&new, &a).unwrap().moved);
    assert_eq!(git(&a, &["rev-parse", "HEAD"]), new);
    let err = mirror
        .checkout(&"1".repeat(40), &work.join("q3"))
        .unwrap_err();
    assert!(matches!(err, GitError::CommitNotFound { .. }));
    assert!(!work.join("q3").exists());
}

#[test]
fn a_failed_first_fetch_leaves_no_mirror() {
    let dir = TempDir::new().unwrap();
    let missing = dir.path().join("does-not-exist");
    let mirror = Mirror::new(&dir.path().join("cache"), &repo(missing.to_str().unwrap()));
    let err = mirror.fetch(TIMEOUT).unwrap_err();
    assert!(matches!(err, GitError::Git { op: "fetch", .. }), "{err:?}");
    assert!(!mirror.path().exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("cache"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "only the lock file: {leftovers:?}");
}

#[test]
fn a_lock_held_past_the_timeout_is_a_timeout() {
    let up = Upstream::new();
    up.commit(&[("a", "a")], "a");
    let (_cache, mirror) = mirror_of(&up);
    std::fs::create_dir_all(mirror.lock_path().parent().unwrap()).unwrap();
    let file = std::fs::File::create(mirror.lock_path()).unwrap();
    let held = Flock::lock(file, FlockArg::LockExclusive).unwrap();

    let started = Instant::now();
    let err = mirror.fetch(Duration::from_millis(300)).unwrap_err();
    let waited = started.elapsed();
    assert!(matches!(err, GitError::Timeout { .. }), "{err:?}");
    assert!(err.to_string().contains("lock"), "{err}");
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    assert!(!mirror.path().exists());

    drop(held);
    assert!(mirror.fetch(TIMEOUT).unwrap().cloned);
}

#[test]
fn threads_fetching_one_new_mirror_all_succeed() {
    let up = Upstream::new();
    let files: Vec<(String, String)> = (0..200)
        .map(|i| (format!("f/{i}.txt"), format!("{i}\n")))
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let head = up.commit(&refs, "many");
    let cache = TempDir::new().unwrap();
    let outcomes: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    // Each its own Mirror, so each opens the lock file itself.
                    let mirror = Mirror::new(cache.path(), &repo(&up.url()));
                    let outcome = mirror.fetch(TIMEOUT).unwrap();
                    (outcome.cloned, mirror.resolve_branch("main").unwrap())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        outcomes.iter().filter(|(cloned, _)| *cloned).count(),
        1,
        "{outcomes:?}"
    );
    assert!(outcomes.iter().all(|(_, commit)| *commit == head));
}

const CHILD_ENV: &str = "TESTARENA_GIT_MIRROR_CHILD";

/// Not a test on its own: the body of each process spawned by
/// `processes_fetching_one_new_mirror_all_succeed`.
#[test]
fn child_fetch() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut parts = spec.split('\n');
    let (cache, url, out) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let mirror = Mirror::new(Path::new(cache), &repo(url));
    let outcome = mirror.fetch(TIMEOUT).unwrap();
    let commit = mirror.resolve_branch("main").unwrap();
    std::fs::write(out, format!("{} {commit}", outcome.cloned)).unwrap();
}

#[test]
fn processes_fetching_one_new_mirror_all_succeed() {
    let up = Upstream::new();
    let files: Vec<(String, String)> = (0..300)
        .map(|i| (format!("f/{i}.txt"), format!("{i}\n")))
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let head = up.commit(&refs, "many");
    let dir = TempDir::new().unwrap();
    let cache = dir.path().join("cache");
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..3)
        .map(|i| {
            let out = dir.path().join(format!("out{i}"));
            let spec = format!("{}\n{}\n{}", cache.display(), up.url(), out.display());
            let child = Command::new(&exe)
                .args(["--exact", "child_fetch", "--test-threads=1", "--quiet"])
                .env(CHILD_ENV, spec)
                .stdout(Stdio::null())
                .spawn()
                .unwrap();
            (child, out)
        })
        .collect();
    let mut cloned = 0;
    for (mut child, out) in children {
        assert!(child.wait().unwrap().success());
        let result = std::fs::read_to_string(out).unwrap();
        let (was_cloned, commit) = result.split_once(' ').unwrap();
        assert_eq!(commit, head);
        cloned += usize::from(was_cloned == "true");
    }
    assert_eq!(cloned, 1);
}

/// Builds `commits` commits of a `files`-file tree with `git fast-import`:
/// the first adds every file, each later one changes five.
fn generate(up: &Upstream, files: usize, commits: usize) {
    let mut stream = String::new();
    for c in 0..commits {
        let message = format!("commit {c}\n");
        let _ = write!(
            stream,
            "commit refs/heads/main\nmark :{}\ncommitter Test <test@example.invalid> {} +0000\ndata {}\n{message}",
            c + 1,
            1_700_000_000 + c,
            message.len()
        );
        if c > 0 {
            let _ = writeln!(stream, "from :{c}");
        }
        let changed: Vec<usize> = if c == 0 {
            (0..files).collect()
        } else {
            (0..5).map(|k| (c * 37 + k * 401) % files).collect()
        };
        for f in changed {
            let content: String = (0..20)
                .map(|l| format!("file {f} line {l} rev {c}\n"))
                .collect();
            let _ = write!(
                stream,
                "M 100644 inline dir{}/file{f}.c\ndata {}\n{content}\n",
                f % 40,
                content.len()
            );
        }
    }
    git_with_input(
        &up.path,
        &["fast-import", "--quiet"],
        Some(stream.as_bytes()),
    );
    git(&up.path, &["reset", "-q", "--hard", "main"]);
}

/// `cargo test -p testarena-domain --test git_mirror -- --ignored --nocapture timing`
#[test]
#[ignore = "a measurement, not a check"]
fn timing_of_fetch_and_checkout() {
    let up = Upstream::new();
    let started = Instant::now();
    generate(&up, 2000, 500);
    eprintln!(
        "generated 2000 files x 500 commits in {:?}",
        started.elapsed()
    );
    let (cache, mirror) = mirror_of(&up);

    let t = Instant::now();
    let first = mirror.fetch(TIMEOUT).unwrap();
    let fetched = t.elapsed();
    let commit = mirror.resolve_branch("main").unwrap();
    mirror.checkout(&commit, &cache.path().join("w1")).unwrap();
    eprintln!(
        "first:  fetch {fetched:?} ({} objects, {} KiB) + checkout {:?} = {:?}",
        first.received_objects,
        first.received_bytes / 1024,
        t.elapsed() - fetched,
        t.elapsed()
    );

    up.commit(&[("dir0/file0.c", "changed\n")], "one more");
    let t = Instant::now();
    let second = mirror.fetch(TIMEOUT).unwrap();
    let fetched = t.elapsed();
    let commit = mirror.resolve_branch("main").unwrap();
    let outcome = mirror.checkout(&commit, &cache.path().join("w1")).unwrap();
    assert!(outcome.moved);
    eprintln!(
        "second: fetch {fetched:?} ({} objects, {} bytes) + moved checkout {:?} = {:?}",
        second.received_objects,
        second.received_bytes,
        t.elapsed() - fetched,
        t.elapsed()
    );
    assert!(!second.cloned);
}

#[test]
fn a_fetch_past_its_deadline_is_a_timeout() {
    let up = Upstream::new();
    generate(&up, 2000, 20);
    let (_cache, mirror) = mirror_of(&up);
    // Either the deadline passes before the transfer starts or the progress
    // callback stops it: both are the same timeout.
    let err = mirror.fetch(Duration::from_millis(50)).unwrap_err();
    assert!(
        matches!(err, GitError::Timeout { op: "fetching", .. }),
        "{err:?}"
    );
    assert!(!mirror.path().exists());
    assert!(mirror.fetch(TIMEOUT).unwrap().cloned);
}

#[path = "git_mirror/worktree.rs"]
mod worktree;
