//! Naming a commit of a branch's history: what a submission's `commit`
//! field resolves through.

use git2::{ErrorCode, Oid};

use super::{GitError, Mirror, git_err};

/// The shortest abbreviation of a commit id that a submission may give.
pub const MIN_ABBREV: usize = 7;

impl Mirror {
    /// The full id of the commit `rev` names (40 hex digits, or an
    /// unambiguous abbreviation of at least [`MIN_ABBREV`]), provided it is
    /// the tip of `branch` or one of its ancestors, as of the last fetch.
    /// Anything else, including a commit that exists only on another
    /// branch, is [`GitError::CommitNotFound`].
    pub fn resolve_commit(&self, branch: &str, rev: &str) -> Result<String, GitError> {
        let not_found = || GitError::CommitNotFound {
            commit: rev.to_owned(),
        };
        let hex = rev.len() >= MIN_ABBREV
            && rev.len() <= 40
            && rev.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex {
            return Err(not_found());
        }
        let tip = Oid::from_str(&self.resolve_branch(branch)?)
            .map_err(|e| git_err("resolve commit", &e))?;
        let repo = self.open()?;
        // By id only: a branch or tag named like a hex string is no commit.
        let commit = match repo.find_commit_by_prefix(&rev.to_ascii_lowercase()) {
            Ok(commit) => commit,
            Err(e) if matches!(e.code(), ErrorCode::NotFound | ErrorCode::Ambiguous) => {
                return Err(not_found());
            }
            Err(e) if e.class() == git2::ErrorClass::Object => return Err(not_found()),
            Err(e) => return Err(git_err("resolve commit", &e)),
        };
        let id = commit.id();
        let on_branch = id == tip
            || repo
                .graph_descendant_of(tip, id)
                .map_err(|e| git_err("resolve commit", &e))?;
        if on_branch {
            Ok(id.to_string())
        } else {
            Err(not_found())
        }
    }
}
