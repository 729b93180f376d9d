//! Checkouts that move from commit to commit: after every move the working
//! tree is exactly the commit's tree, as the `git` command checks it out,
//! whatever the last queue's build left, changed or deleted.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

use super::*;

/// Every file, symbolic link and empty directory under `dir` but `.git`:
/// path → content (a link as `-> target`, a directory as `/`).
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let mut empty = true;
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned();
            if rel == ".git" {
                continue;
            }
            empty = false;
            let kind = entry.file_type().unwrap();
            if kind.is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                out.insert(rel, format!("-> {}", target.display()).into_bytes());
            } else if kind.is_dir() {
                walk(root, &path, out);
            } else {
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
        if empty && dir != root {
            let rel = dir.strip_prefix(root).unwrap().to_str().unwrap();
            out.insert(format!("{rel}/"), Vec::new());
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// The tree of `commit` as the `git` command checks it out: the oracle.
fn expected(up: &Upstream, commit: &str) -> BTreeMap<String, Vec<u8>> {
    let dir = TempDir::new().unwrap();
    let clone = dir.path().join("clone");
    git(
        dir.path(),
        &["clone", "-q", "--no-checkout", &up.url(), "clone"],
    );
    git(&clone, &["checkout", "-q", "--detach", commit]);
    tree(&clone)
}

/// Asserts that `dest` holds exactly `commit` and that git agrees.
fn assert_exactly(up: &Upstream, dest: &Path, commit: &str) {
    assert_eq!(tree(dest), expected(up, commit), "tree of {commit}");
    assert_eq!(git(dest, &["rev-parse", "HEAD"]), commit);
    assert_eq!(
        git(dest, &["status", "--porcelain", "--ignored"]),
        "",
        "nothing untracked, ignored or modified"
    );
}

/// What a build and its tests leave in a checkout: output in an ignored
/// directory, an ignored object file, an untracked file and directory, a
/// nested repository, a tracked file modified (same size), another deleted.
fn dirty(dest: &Path) {
    std::fs::create_dir_all(dest.join("build/obj")).unwrap();
    std::fs::write(dest.join("build/obj/app.bin"), "binary").unwrap();
    std::fs::write(dest.join("main.o"), "object").unwrap();
    std::fs::write(dest.join("untracked.txt"), "left by a test").unwrap();
    std::fs::create_dir_all(dest.join("gen/deep")).unwrap();
    std::fs::write(dest.join("gen/deep/out.h"), "#define X 1").unwrap();
    std::fs::create_dir_all(dest.join("deps/component")).unwrap();
    git(&dest.join("deps/component"), &["init", "-q"]);
    std::fs::write(dest.join("sub/keep.txt"), "KEEP\n").unwrap();
    std::fs::remove_file(dest.join("sub/gone-by-build.txt")).unwrap();
}

#[test]
fn a_moved_checkout_is_exactly_each_commits_tree() {
    let up = Upstream::new();
    let c1 = up.commit(
        &[
            (".gitignore", "*.o\n/build/\n"),
            ("a.txt", "one\n"),
            ("deleted.txt", "only in the first commit\n"),
            ("sub/keep.txt", "keep\n"),
            ("sub/gone-by-build.txt", "a build deletes me\n"),
            ("kind", "a file that becomes a directory\n"),
        ],
        "c1",
    );
    git(&up.path, &["rm", "-q", "deleted.txt", "kind"]);
    std::os::unix::fs::symlink("a.txt", up.path.join("link")).unwrap();
    let c2 = up.commit(
        &[
            ("a.txt", "two\n"),
            ("added.txt", "new in the second\n"),
            ("kind/inner.txt", "now a directory\n"),
        ],
        "c2",
    );
    let (cache, mirror) = mirror_of(&up);
    mirror.fetch(TIMEOUT).unwrap();
    let dest = cache.path().join("work/w/0/firmware");

    let first = mirror.checkout(&c1, &dest).unwrap();
    assert_eq!((first.moved, first.remade), (false, None));
    assert_exactly(&up, &dest, &c1);

    // Each queue in turn: the build dirties the tree, the next queue's
    // checkout moves it, to the other commit or to the same one.
    for commit in [&c2, &c1, &c1, &c2] {
        dirty(&dest);
        let outcome = mirror.checkout(commit, &dest).unwrap();
        assert_eq!((outcome.moved, outcome.remade), (true, None));
        assert_exactly(&up, &dest, commit);
    }
    assert!(
        !dest.join("deleted.txt").exists(),
        "deleted between commits"
    );
    assert!(!dest.join("build").exists() && !dest.join("main.o").exists());
    assert!(!dest.join("deps/component").exists(), "nested repository");
    assert_eq!(std::fs::read(dest.join("sub/keep.txt")).unwrap(), b"keep\n");
}

#[test]
fn a_move_rewrites_only_the_files_that_changed() {
    let up = Upstream::new();
    let c1 = up.commit(&[("same.txt", "same\n"), ("changed.txt", "v1\n")], "c1");
    let c2 = up.commit(&[("changed.txt", "v2\n")], "c2");
    let (cache, mirror) = mirror_of(&up);
    mirror.fetch(TIMEOUT).unwrap();
    let dest = cache.path().join("tree");
    mirror.checkout(&c1, &dest).unwrap();
    let stamp = |name: &str| {
        let meta = std::fs::metadata(dest.join(name)).unwrap();
        (meta.ino(), meta.mtime(), meta.mtime_nsec())
    };
    let (same, changed) = (stamp("same.txt"), stamp("changed.txt"));
    assert!(mirror.checkout(&c2, &dest).unwrap().moved);
    assert_eq!(stamp("same.txt"), same, "an unchanged file is left alone");
    assert_ne!(stamp("changed.txt"), changed);
    assert_exactly(&up, &dest, &c2);
}

#[test]
fn a_broken_checkout_is_removed_and_made_again() {
    let up = Upstream::new();
    let c1 = up.commit(&[("a.txt", "a\n"), ("dir/b.txt", "b\n")], "c1");
    let (cache, mirror) = mirror_of(&up);
    mirror.fetch(TIMEOUT).unwrap();
    let dest = cache.path().join("tree");
    type Break = fn(&Path);
    let breakages: [(&str, Break); 5] = [
        ("garbage HEAD", |d| {
            std::fs::write(d.join(".git/HEAD"), "garbage").unwrap()
        }),
        ("no .git", |d| {
            std::fs::remove_dir_all(d.join(".git")).unwrap()
        }),
        ("foreign alternates", |d| {
            std::fs::write(d.join(".git/objects/info/alternates"), "/elsewhere\n").unwrap()
        }),
        ("a file instead", |d| {
            std::fs::remove_dir_all(d).unwrap();
            std::fs::write(d, "not a directory").unwrap();
        }),
        ("a corrupt index", |d| {
            std::fs::write(d.join(".git/index"), "DIRC garbage").unwrap()
        }),
    ];
    for (what, break_it) in breakages {
        mirror.checkout(&c1, &dest).unwrap();
        dirty_lightly(&dest);
        break_it(&dest);
        let outcome = mirror.checkout(&c1, &dest).unwrap();
        assert!(!outcome.moved, "{what}");
        assert!(outcome.remade.is_some(), "{what}: {outcome:?}");
        assert_exactly(&up, &dest, &c1);
    }
}

fn dirty_lightly(dest: &Path) {
    if dest.is_dir() {
        std::fs::write(dest.join("stray.txt"), "stray").unwrap();
    }
}

#[test]
fn a_commit_the_mirror_lost_is_not_found_and_its_checkout_is_made_again() {
    let up = Upstream::new();
    let c1 = up.commit(&[("a.txt", "a\n")], "c1");
    let c2 = up.commit(&[("a.txt", "lost\n"), ("lost.txt", "lost\n")], "c2");
    let (cache, mirror) = mirror_of(&up);
    mirror.fetch(TIMEOUT).unwrap();
    let dest = cache.path().join("tree");
    mirror.checkout(&c2, &dest).unwrap();

    // History rewritten upstream, then the mirror garbage-collected.
    git(&up.path, &["reset", "-q", "--hard", &c1]);
    let c3 = up.commit(&[("a.txt", "rewritten\n")], "c3");
    mirror.fetch(TIMEOUT).unwrap();
    git(
        mirror.path(),
        &["reflog", "expire", "--expire=now", "--all"],
    );
    git(mirror.path(), &["gc", "-q", "--prune=now"]);

    let err = mirror.checkout(&c2, &dest).unwrap_err();
    assert!(
        matches!(&err, GitError::CommitNotFound { commit } if *commit == c2),
        "{err:?}"
    );
    // The checkout still stands at the lost commit: moving it needs objects
    // the mirror no longer has, so it is made again.
    let outcome = mirror.checkout(&c3, &dest).unwrap();
    assert!(outcome.remade.is_some(), "{outcome:?}");
    assert_exactly(&up, &dest, &c3);
}
