//! The slot's checkout from queue to queue: each queue runs exactly the
//! commit pinned at its submission (or its branch's tip, for a queue stored
//! without one), in a tree that holds that commit's files and nothing that
//! the previous queue's build left.

use testarena_domain::status::Status;

use crate::support::*;

/// A build that first reports what the checkout holds (its `HEAD`, what
/// git sees as changed, untracked or ignored, and every file), then dirties
/// it as builds do: output under `build/`, an ignored object file, an
/// untracked file, a tracked file changed and another deleted.
const REPORT_THEN_DIRTY: &str = "echo \"head $(git rev-parse HEAD)\"; \
    git status --porcelain --ignored --untracked-files=all | sed 's/^/status /'; \
    find . -path ./.git -prune -o ! -type d -print | LC_ALL=C sort | sed 's|^\\./|file |'; \
    mkdir -p build && echo out > build/out.bin && echo junk > untracked.txt && \
    echo object > main.o && echo changed > version && rm scenarios/fail.xml";

/// The first commit's extra files: SCENARIOS plus these.
const EXTRA: &[(&str, &str)] = &[
    (".gitignore", "*.o\n"),
    ("version", "1\n"),
    ("old.txt", "only in the first commit\n"),
];

fn farm(name: &str) -> Farm {
    Farm::create(name, target(&["sh", "-c", REPORT_THEN_DIRTY]), |repo| {
        let files: Vec<(&str, &str)> = SCENARIOS.iter().chain(EXTRA).copied().collect();
        make_repo(repo, &files);
    })
}

fn repo(farm: &Farm) -> std::path::PathBuf {
    farm.dir.path().join("repo")
}

/// Moves `main` on: `version` changed, `old.txt` deleted, `new.txt` added.
fn second_commit(farm: &Farm) -> String {
    let repo = repo(farm);
    std::fs::write(repo.join("version"), "2\n").unwrap();
    std::fs::write(repo.join("new.txt"), "new\n").unwrap();
    git(&repo, &["rm", "-q", "old.txt"]);
    git(&repo, &["add", "-A"]);
    git(
        &repo,
        &["-c", "commit.gpgsign=false", "commit", "-q", "-m", "second"],
    );
    git(&repo, &["rev-parse", "HEAD"])
}

/// What the build of queue `id` reported: `(head, status lines, files)`.
fn reported(farm: &Farm, id: &str) -> (String, Vec<String>, Vec<String>) {
    let log = farm.read(farm.queue_dir(id).join("build.log"));
    let (mut head, mut status, mut files) = (String::new(), Vec::new(), Vec::new());
    for line in log.lines() {
        if let Some(h) = line.strip_prefix("head ") {
            head = h.to_owned();
        } else if let Some(s) = line.strip_prefix("status ") {
            status.push(s.to_owned());
        } else if let Some(f) = line.strip_prefix("file ") {
            files.push(f.to_owned());
        }
    }
    (head, status, files)
}

/// Every path of `commit`'s tree, as git lists it.
fn files_of(farm: &Farm, commit: &str) -> Vec<String> {
    let mut files: Vec<String> = git(&repo(farm), &["ls-tree", "-r", "--name-only", commit])
        .lines()
        .map(str::to_owned)
        .collect();
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_queue_sees_exactly_its_commit_whatever_the_last_build_left() {
    let farm = farm("moves");
    let first = git(&repo(&farm), &["rev-parse", "HEAD"]);
    let scenarios = ["scenarios/pass.xml"];
    // Pinned at submission; the branch moves on while it waits.
    let waited = farm.submit_pinned("-1", "main", Some(&first), &scenarios);
    let second = second_commit(&farm);
    let pinned_second = farm.submit_pinned("-2", "main", Some(&second), &scenarios);
    // Stored before commits were pinned: the branch's tip when it runs.
    let unpinned = farm.submit_pinned("-3", "main", None, &scenarios);
    let back = farm.submit_pinned("-4", "main", Some(&first), &scenarios);

    let expected = [
        (&waited, &first, "checked out (new tree)"),
        (
            &pinned_second,
            &second,
            "checked out (moved the slot's tree)",
        ),
        (&unpinned, &second, "checked out (moved the slot's tree)"),
        (&back, &first, "checked out (moved the slot's tree)"),
    ];
    for (id, commit, checked_out) in expected {
        let (status, reason) = farm.run_next().await;
        assert_eq!((status, reason.as_str()), (Status::Passed, ""), "{id}");
        let (head, changes, files) = reported(&farm, id);
        assert_eq!(&head, commit, "{id} ran its commit");
        assert_eq!(changes, Vec::<String>::new(), "{id}: a clean tree");
        assert_eq!(files, files_of(&farm, commit), "{id}: exactly its files");
        assert_eq!(farm.queue(id).commit_sha.as_ref(), Some(commit));
        let timeline = farm.read(farm.queue_dir(id).join("queue.log"));
        assert!(
            timeline.contains(&format!("commit {commit} (main)")),
            "{timeline}"
        );
        assert!(timeline.contains(checked_out), "{id}: {timeline}");
        assert!(!farm.workspace().join("build").exists(), "{id}");
    }
    // The last queue's leftovers stay until the next checkout removes them,
    // except its build directory.
    assert!(farm.workspace().join("untracked.txt").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_commit_the_repository_lost_is_an_error() {
    let farm = farm("lost");
    let missing = "0123456789abcdef0123456789abcdef01234567";
    let id = farm.submit_pinned("", "main", Some(missing), &["scenarios/pass.xml"]);
    let (status, reason) = farm.run_next().await;
    assert_eq!(
        (status, reason.as_str()),
        (
            Status::Error,
            format!("commit {missing} is not in the repository").as_str()
        )
    );
    let (_, _, tasks) = statuses(&farm.detail(&id));
    assert_eq!(tasks, vec![("skipped".into(), Some("not reached".into()))]);
    assert_eq!(farm.queue(&id).commit_sha.as_deref(), Some(missing));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_workspace_leaves_the_build_until_the_slots_next_queue() {
    let mut farm = farm("keep");
    farm.config.worker.keep_workspace = true;
    let first = farm.submit_pinned("-1", "main", None, &["scenarios/pass.xml"]);
    assert_eq!(farm.run_next().await.0, Status::Passed);
    let kept = farm.workspace();
    assert_eq!(farm.read(kept.join("build/out.bin")), "out\n");
    assert_eq!(farm.read(kept.join("version")), "changed\n");
    let second = farm.submit_pinned("-2", "main", None, &["scenarios/pass.xml"]);
    assert_eq!(farm.run_next().await.0, Status::Passed);
    let (_, changes, files) = reported(&farm, &second);
    let commit = farm.queue(&first).commit_sha.unwrap();
    assert_eq!(changes, Vec::<String>::new());
    assert_eq!(files, files_of(&farm, &commit));
}
