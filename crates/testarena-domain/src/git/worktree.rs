//! Working trees that move from commit to commit (DESIGN section 3): a
//! worker slot keeps one checkout per repository and [`Mirror::checkout`]
//! moves it to the next queue's commit, writing only the files that differ
//! and removing every untracked and ignored file, as `git checkout --force
//! <sha> && git clean -ffdx` would.
//!
//! A checkout is a non-bare repository whose objects come from the mirror
//! through `.git/objects/info/alternates`: nothing is copied but the files.
//! Its index remembers what was written (sizes and times), so the next move
//! compares the files against it and rewrites only those that changed: the
//! commits' differences, and whatever the last queue's build or tests
//! modified or deleted. A checkout that cannot be moved (a broken `.git`,
//! alternates naming another mirror, objects the mirror lost) is removed and
//! made again from scratch, once.

use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use git2::build::CheckoutBuilder;
use git2::{Oid, Repository, RepositoryInitOptions};

use super::{GitError, Mirror, find_commit, git_err, io_err};

/// How a [`Mirror::checkout`] went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutOutcome {
    /// An existing checkout was moved (only what changed was written);
    /// otherwise the whole tree was written.
    pub moved: bool,
    /// An existing checkout could not be moved, for this reason, and was
    /// removed and made again.
    pub remade: Option<String>,
}

impl Mirror {
    /// Brings the working tree at `dest` to `commit`: exactly the files of
    /// that commit's tree, nothing else (submodules are left out), `HEAD`
    /// detached at it. An existing checkout of this mirror is moved; a
    /// missing `dest` is made; anything else at `dest` (a broken checkout,
    /// a stray directory) is removed and made again. On failure `dest` may
    /// hold a partial tree, which the next call removes.
    pub fn checkout(&self, commit: &str, dest: &Path) -> Result<CheckoutOutcome, GitError> {
        let mirror = self.open()?;
        let oid = find_commit(&mirror, commit)?.id();
        let objects = mirror.path().join("objects");
        let objects = fs::canonicalize(&objects).map_err(|e| io_err(&objects, e))?;
        drop(mirror);

        let exists = match fs::symlink_metadata(dest) {
            Ok(_) => true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(io_err(dest, e)),
        };
        let remade = if exists {
            match move_tree(dest, &objects, oid) {
                Ok(()) => {
                    tracing::debug!(repo = %self.name, commit, dest = %dest.display(), "checkout moved");
                    return Ok(CheckoutOutcome {
                        moved: true,
                        remade: None,
                    });
                }
                Err(why) => {
                    tracing::warn!(
                        repo = %self.name,
                        dest = %dest.display(),
                        error = %why,
                        "checkout cannot be moved; making it again"
                    );
                    remove_tree(dest)?;
                    Some(why.to_string())
                }
            }
        } else {
            None
        };
        fresh_tree(dest, &objects, oid)?;
        tracing::debug!(repo = %self.name, commit, dest = %dest.display(), "checked out");
        Ok(CheckoutOutcome {
            moved: false,
            remade,
        })
    }
}

/// The options of every checkout: overwrite what differs, remove what the
/// commit does not hold (untracked and ignored files alike).
fn options() -> CheckoutBuilder<'static> {
    let mut options = CheckoutBuilder::new();
    options
        .force()
        .remove_untracked(true)
        .remove_ignored(true)
        .recreate_missing(true);
    options
}

/// Moves the checkout at `dest` to `oid`. Any error means the checkout is
/// not one this mirror can move (or moving it failed half way): the caller
/// makes it again.
fn move_tree(dest: &Path, objects: &Path, oid: Oid) -> Result<(), GitError> {
    let repo = Repository::open(dest).map_err(|e| git_err("open checkout", &e))?;
    let own = repo.workdir().and_then(|w| fs::canonicalize(w).ok()) == fs::canonicalize(dest).ok();
    if repo.is_bare() || !own {
        return Err(GitError::Git {
            op: "open checkout",
            message: "not a checkout of its own directory".to_owned(),
        });
    }
    let alternates = alternates_path(&repo);
    let named = fs::read(&alternates).map_err(|e| io_err(&alternates, e))?;
    if named.strip_suffix(b"\n").unwrap_or(&named) != objects.as_os_str().as_bytes() {
        return Err(GitError::Git {
            op: "open checkout",
            message: format!("its objects come from elsewhere than {}", objects.display()),
        });
    }
    check_out(&repo, oid)
}

/// Writes `oid`'s tree into `repo`'s working tree (forced, untracked and
/// ignored files removed) and detaches HEAD at it.
fn check_out(repo: &Repository, oid: Oid) -> Result<(), GitError> {
    let commit = repo.find_commit(oid).map_err(|e| git_err("checkout", &e))?;
    repo.checkout_tree(commit.as_object(), Some(&mut options()))
        .map_err(|e| git_err("checkout", &e))?;
    repo.set_head_detached(oid)
        .map_err(|e| git_err("checkout", &e))
}

/// A new checkout of `oid` at `dest` (missing or empty), borrowing the
/// mirror's objects.
fn fresh_tree(dest: &Path, objects: &Path, oid: Oid) -> Result<(), GitError> {
    let mut init = RepositoryInitOptions::new();
    init.no_reinit(true).mkpath(true);
    let repo = Repository::init_opts(dest, &init).map_err(|e| git_err("checkout init", &e))?;
    let alternates = alternates_path(&repo);
    drop(repo);
    if let Some(info) = alternates.parent() {
        fs::create_dir_all(info).map_err(|e| io_err(info, e))?;
    }
    let mut line = objects.as_os_str().as_bytes().to_vec();
    line.push(b'\n');
    fs::write(&alternates, line).map_err(|e| io_err(&alternates, e))?;

    // Reopened: alternates are read when the object database is loaded.
    let repo = Repository::open(dest).map_err(|e| git_err("checkout open", &e))?;
    check_out(&repo, oid)
}

fn alternates_path(repo: &Repository) -> PathBuf {
    repo.path().join("objects").join("info").join("alternates")
}

/// Removes a directory tree (or a file) if it exists.
fn remove_tree(path: &Path) -> Result<(), GitError> {
    let result = match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) => Err(e),
    };
    match result {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err(path, e)),
        _ => Ok(()),
    }
}
