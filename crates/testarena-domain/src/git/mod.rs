//! The git mirror: one bare repository per configured remote, under
//! `{home}/cache/git/<hash>.git` (`<hash>`: the first 16 hex digits of the
//! SHA-256 of the URL).
//!
//! A mirror is created once and afterwards only fetched, never re-cloned. It
//! holds the remote's branches as its own `refs/heads/*` (pruned: a branch
//! deleted upstream disappears here); tags are not fetched. Creation and every
//! fetch run under an exclusive `flock` on `<hash>.git.lock` beside the mirror,
//! so the API server (which reads scenario files at submit time) and any number
//! of workers can fetch the same mirror at once. Reads ([`Mirror::resolve_branch`],
//! [`Mirror::read_file`], [`Mirror::checkout`]) take no lock: git updates refs
//! atomically and writes objects before the refs that name them, and a new
//! mirror is built beside its final path and renamed into place only once
//! complete.
//!
//! A checkout ([`Mirror::checkout`], in `worktree.rs`) is a non-bare
//! repository whose objects come from the mirror through
//! `.git/objects/info/alternates`: nothing is copied but the working tree,
//! and a checkout that exists is moved to the next commit, writing only what
//! changed. It stays valid as long as the mirror keeps its objects, which it
//! does (libgit2 never garbage-collects; a checkout whose objects were
//! pruned from the mirror anyway is made again).
//!
//! Remote access: SSH with the configured private key (else the ssh-agent),
//! the host key always checked against a known_hosts file; HTTPS with a token
//! read from an environment variable, the TLS chain checked by libgit2; local
//! paths and `file://` need nothing. All of it is blocking: call it from
//! `spawn_blocking` / `web::block`.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use git2::cert::CertHostkey;
use git2::{
    AutotagOption, CertificateCheckStatus, Cred, CredentialType, ErrorCode, FetchOptions,
    FetchPrune, ObjectType, Oid, Reference, RemoteCallbacks, Repository, RepositoryInitOptions,
};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use sha2::{Digest, Sha256};

use crate::config::RepoConfig;

/// What the mirror fetches: every branch, as is, force-updated.
const HEADS_REFSPEC: &str = "+refs/heads/*:refs/heads/*";
/// Credential requests answered per fetch before giving up (a rejected key or
/// token is otherwise asked for again and again).
const MAX_AUTH_ATTEMPTS: u32 = 3;
/// Git file mode of a symbolic link.
const MODE_SYMLINK: i32 = 0o120_000;

/// Why a mirror operation failed.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// No such branch in the mirror (after its last fetch), or not a valid
    /// branch name.
    #[error("branch {branch:?} not found")]
    BranchNotFound { branch: String },
    /// Not a full 40-hex commit id, or no such commit in the mirror.
    #[error("commit {commit:?} not found")]
    CommitNotFound { commit: String },
    #[error("{path:?} not found at commit {commit}")]
    FileNotFound { path: String, commit: String },
    /// A directory, a symbolic link or a submodule. Links are refused so that
    /// a scenario path cannot point outside the repository.
    #[error("{path:?} is a {kind}, not a regular file")]
    NotAFile { path: String, kind: &'static str },
    #[error("{path:?} is {size} bytes, over the limit of {max}")]
    TooLarge {
        path: String,
        size: usize,
        max: usize,
    },
    /// The deadline passed, waiting for the mirror's lock or fetching.
    #[error("git mirror: timed out after {after:?} {op}")]
    Timeout { op: &'static str, after: Duration },
    /// What git said, for the operation `op`.
    #[error("git {op} failed: {message}")]
    Git { op: &'static str, message: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// How a [`Mirror::fetch`] went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchOutcome {
    /// The mirror did not exist and was created by this fetch.
    pub cloned: bool,
    /// Whole call, lock wait included.
    pub elapsed: Duration,
    /// Part of `elapsed` spent waiting for another process's fetch.
    pub lock_wait: Duration,
    pub received_objects: usize,
    pub received_bytes: usize,
}

/// The bare mirror of one configured repository. Cheap to build; does I/O only
/// when a method is called. `Send + Sync`: each call opens the repository.
pub struct Mirror {
    name: String,
    url: String,
    path: PathBuf,
    lock_path: PathBuf,
    staging_path: PathBuf,
    auth: Auth,
}

impl fmt::Debug for Mirror {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mirror")
            .field("name", &self.name)
            .field("url", &redact_url(&self.url))
            .field("path", &self.path)
            .field("auth", &self.auth)
            .finish()
    }
}

impl Mirror {
    /// The mirror of `repo` under `cache_dir` (`{home}/cache/git`). No I/O.
    pub fn new(cache_dir: &Path, repo: &RepoConfig) -> Mirror {
        let base = format!("{}.git", mirror_hash(&repo.url));
        Mirror {
            name: repo.name.clone(),
            url: repo.url.clone(),
            path: cache_dir.join(&base),
            lock_path: cache_dir.join(format!("{base}.lock")),
            staging_path: cache_dir.join(format!("{base}.new")),
            auth: Auth {
                ssh_key: repo.ssh_key.clone(),
                known_hosts: repo.known_hosts.clone(),
                token_env: repo.token_env.clone(),
            },
        }
    }

    /// The bare repository, `{cache_dir}/<hash>.git`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The lock file beside it, `{cache_dir}/<hash>.git.lock`, held with
    /// `flock(LOCK_EX)` while creating or fetching.
    pub fn lock_path(&self) -> &Path {
        &self.lock_path
    }

    /// Brings the mirror up to date with the remote's branches, creating it
    /// first when missing. Waits for the lock if another process is
    /// fetching; `timeout` bounds the wait and the transfer together. A
    /// server that never sends a byte is only cut off by libgit2's own
    /// socket timeouts.
    pub fn fetch(&self, timeout: Duration) -> Result<FetchOutcome, GitError> {
        let started = Instant::now();
        let deadline = started + timeout;
        let _lock = self.lock(deadline, timeout)?;
        let lock_wait = started.elapsed();
        let (cloned, (received_objects, received_bytes)) = match fs::symlink_metadata(&self.path) {
            Ok(_) => {
                let repo = self.open()?;
                (false, self.fetch_into(&repo, deadline, timeout)?)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                (true, self.create(deadline, timeout)?)
            }
            Err(source) => return Err(io_err(&self.path, source)),
        };
        let outcome = FetchOutcome {
            cloned,
            elapsed: started.elapsed(),
            lock_wait,
            received_objects,
            received_bytes,
        };
        tracing::info!(
            repo = %self.name,
            cloned,
            elapsed_ms = outcome.elapsed.as_millis() as u64,
            lock_wait_ms = lock_wait.as_millis() as u64,
            received_bytes,
            "git mirror fetched"
        );
        Ok(outcome)
    }

    /// The commit (40 hex digits) at the tip of `branch`, as of the last fetch.
    pub fn resolve_branch(&self, branch: &str) -> Result<String, GitError> {
        let not_found = || GitError::BranchNotFound {
            branch: branch.to_owned(),
        };
        let refname = format!("refs/heads/{branch}");
        // `is_valid_name` panics on a NUL byte.
        if branch.contains('\0') || !Reference::is_valid_name(&refname) {
            return Err(not_found());
        }
        let repo = self.open()?;
        let reference = match repo.find_reference(&refname) {
            Ok(r) => r,
            Err(e) if e.code() == ErrorCode::NotFound => return Err(not_found()),
            Err(e) => return Err(git_err("resolve branch", &e)),
        };
        let commit = reference
            .peel_to_commit()
            .map_err(|e| git_err("resolve branch", &e))?;
        Ok(commit.id().to_string())
    }

    /// The content of the regular file `path` (relative to the repository
    /// root, `/`-separated) at `commit`. Refuses directories, symbolic links
    /// (also as a leading component) and submodules, and checks the size
    /// before reading the blob.
    pub fn read_file(
        &self,
        commit: &str,
        path: &str,
        max_bytes: usize,
    ) -> Result<Vec<u8>, GitError> {
        let repo = self.open()?;
        let mut tree = find_commit(&repo, commit)?
            .tree()
            .map_err(|e| git_err("read tree", &e))?;
        let not_found = || GitError::FileNotFound {
            path: path.to_owned(),
            commit: commit.to_owned(),
        };
        let not_a_file = |upto: &[&str], kind| GitError::NotAFile {
            path: upto.join("/"),
            kind,
        };
        // `Tree::get_name` panics on a NUL byte; no git path holds one.
        if path.contains('\0') {
            return Err(not_found());
        }
        let parts: Vec<&str> = path
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .collect();
        if parts.is_empty() {
            return Err(not_a_file(&["."], "directory"));
        }
        for (i, name) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            let (id, kind, mode) = match tree.get_name(name) {
                Some(entry) => (entry.id(), entry.kind(), entry.filemode()),
                None => return Err(not_found()),
            };
            match kind {
                Some(ObjectType::Tree) if last => return Err(not_a_file(&parts, "directory")),
                Some(ObjectType::Tree) => {
                    tree = repo.find_tree(id).map_err(|e| git_err("read tree", &e))?;
                }
                Some(ObjectType::Blob) if mode == MODE_SYMLINK => {
                    return Err(not_a_file(&parts[..=i], "symbolic link"));
                }
                Some(ObjectType::Blob) if last => {
                    let odb = repo.odb().map_err(|e| git_err("read file", &e))?;
                    let (size, _) = odb.read_header(id).map_err(|e| git_err("read file", &e))?;
                    if size > max_bytes {
                        return Err(GitError::TooLarge {
                            path: path.to_owned(),
                            size,
                            max: max_bytes,
                        });
                    }
                    let blob = repo.find_blob(id).map_err(|e| git_err("read file", &e))?;
                    return Ok(blob.content().to_vec());
                }
                // A file used as a directory.
                Some(ObjectType::Blob) => return Err(not_found()),
                Some(ObjectType::Commit) => return Err(not_a_file(&parts[..=i], "submodule")),
                _ => return Err(not_a_file(&parts[..=i], "unknown object")),
            }
        }
        Err(not_found())
    }

    fn open(&self) -> Result<Repository, GitError> {
        Repository::open_bare(&self.path).map_err(|e| {
            if e.code() == ErrorCode::NotFound {
                GitError::Git {
                    op: "open mirror",
                    message: format!("no mirror at {} yet: fetch first", self.path.display()),
                }
            } else {
                git_err("open mirror", &e)
            }
        })
    }

    /// Takes the mirror's lock, polling until `deadline`.
    fn lock(&self, deadline: Instant, timeout: Duration) -> Result<Flock<File>, GitError> {
        if let Some(dir) = self.lock_path.parent() {
            fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.lock_path)
            .map_err(|e| io_err(&self.lock_path, e))?;
        let mut pause = Duration::from_millis(5);
        loop {
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => return Ok(lock),
                Err((f, Errno::EWOULDBLOCK | Errno::EINTR)) => file = f,
                Err((_, errno)) => return Err(io_err(&self.lock_path, io::Error::from(errno))),
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(GitError::Timeout {
                    op: "waiting for the mirror lock",
                    after: timeout,
                });
            }
            thread::sleep(pause.min(deadline - now));
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    /// First fetch: built at `<hash>.git.new`, renamed into place when
    /// complete, so a reader never sees a half-made mirror. Called under the
    /// lock, so a leftover staging directory is from a crash and can go.
    fn create(&self, deadline: Instant, timeout: Duration) -> Result<(usize, usize), GitError> {
        let staging = &self.staging_path;
        if fs::symlink_metadata(staging).is_ok() {
            fs::remove_dir_all(staging).map_err(|e| io_err(staging, e))?;
        }
        let result = (|| {
            let mut init = RepositoryInitOptions::new();
            init.bare(true).no_reinit(true).mkpath(true);
            let repo =
                Repository::init_opts(staging, &init).map_err(|e| git_err("init mirror", &e))?;
            let stats = self.fetch_into(&repo, deadline, timeout)?;
            drop(repo);
            fs::rename(staging, &self.path).map_err(|e| io_err(&self.path, e))?;
            Ok(stats)
        })();
        if result.is_err() {
            let _ = fs::remove_dir_all(staging);
        }
        result
    }

    /// One fetch of every branch into `repo`, with prune and no tags.
    fn fetch_into(
        &self,
        repo: &Repository,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<(usize, usize), GitError> {
        if Instant::now() >= deadline {
            return Err(GitError::Timeout {
                op: "fetching",
                after: timeout,
            });
        }
        let timed_out = Cell::new(false);
        let in_time = || {
            let ok = Instant::now() < deadline;
            if !ok {
                timed_out.set(true);
            }
            ok
        };
        // Our own refusals (host key, credentials), clearer than libgit2's wrapping.
        let refusal: RefCell<Option<String>> = RefCell::new(None);
        let refuse = |message: String| {
            let error = git2::Error::from_str(&message);
            *refusal.borrow_mut() = Some(message);
            error
        };
        let stats = Cell::new((0, 0));
        let port = ssh_port(&self.url);
        let mut attempts = 0;

        let mut callbacks = RemoteCallbacks::new();
        callbacks.transfer_progress(|p| {
            stats.set((p.received_objects(), p.received_bytes()));
            in_time()
        });
        callbacks.sideband_progress(|_| in_time());
        callbacks.credentials(|_url, username, allowed| {
            if !in_time() {
                return Err(git2::Error::from_str("deadline passed"));
            }
            attempts += 1;
            self.auth
                .credentials(attempts, username, allowed)
                .map_err(&refuse)
        });
        callbacks.certificate_check(|cert, host| match cert.as_hostkey() {
            Some(key) => self
                .auth
                .check_host_key(host, port, key)
                .map(|()| CertificateCheckStatus::CertificateOk)
                .map_err(&refuse),
            // TLS: libgit2 verifies the chain and the name against the system's CAs.
            None => Ok(CertificateCheckStatus::CertificatePassthrough),
        });
        let mut options = FetchOptions::new();
        options
            .remote_callbacks(callbacks)
            .prune(FetchPrune::On)
            .download_tags(AutotagOption::None)
            .update_fetchhead(false);

        let mut remote = repo
            .remote_anonymous(&self.url)
            .map_err(|e| git_err("fetch", &e))?;
        let result = remote.fetch(&[HEADS_REFSPEC], Some(&mut options), None);
        drop(options);
        result.map_err(|e| {
            if timed_out.get() {
                GitError::Timeout {
                    op: "fetching",
                    after: timeout,
                }
            } else {
                let message = refusal.take().unwrap_or_else(|| e.message().to_owned());
                GitError::Git {
                    op: "fetch",
                    message: self.scrub(&message),
                }
            }
        })?;
        Ok(stats.get())
    }

    /// `message` with any password in the URL masked.
    fn scrub(&self, message: &str) -> String {
        message.replace(&self.url, &redact_url(&self.url))
    }
}

/// How a mirror authenticates to its remote. Holds the token's variable name,
/// never the token.
#[derive(Debug)]
struct Auth {
    ssh_key: Option<PathBuf>,
    known_hosts: Option<PathBuf>,
    token_env: Option<String>,
}

impl Auth {
    /// Answers libgit2's `attempt`-th credential request of a fetch.
    fn credentials(
        &self,
        attempt: u32,
        username: Option<&str>,
        allowed: CredentialType,
    ) -> Result<Cred, String> {
        if attempt > MAX_AUTH_ATTEMPTS {
            return Err(format!(
                "authentication failed after {MAX_AUTH_ATTEMPTS} attempts: check the repository's ssh_key or token_env"
            ));
        }
        let user = username.filter(|u| !u.is_empty()).unwrap_or("git");
        let cred = if allowed.contains(CredentialType::USERNAME) {
            Cred::username(user)
        } else if allowed.contains(CredentialType::SSH_KEY) {
            match &self.ssh_key {
                Some(key) => Cred::ssh_key(user, None, key, None),
                None => Cred::ssh_key_from_agent(user),
            }
        } else if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) {
            let Some(var) = &self.token_env else {
                return Err(
                    "the server asks for a password and the repository has no token_env".to_owned(),
                );
            };
            let token = std::env::var(var)
                .map_err(|_| format!("token_env: environment variable {var} is not set"))?;
            Cred::userpass_plaintext(user, &token)
        } else {
            return Err(format!(
                "the server asks for credentials of an unsupported kind ({allowed:?})"
            ));
        };
        cred.map_err(|e| format!("credentials: {}", e.message()))
    }

    /// Accepts the SSH host key only if known_hosts lists it for this host.
    fn check_host_key(&self, host: &str, port: u16, key: &CertHostkey<'_>) -> Result<(), String> {
        let file = match (&self.known_hosts, std::env::var_os("HOME")) {
            (Some(file), _) => file.clone(),
            (None, Some(home)) => Path::new(&home).join(".ssh").join("known_hosts"),
            (None, None) => return Err("no known_hosts configured and HOME is not set".to_owned()),
        };
        let text = fs::read(&file).map_err(|e| {
            format!(
                "cannot read known_hosts {}: {e} (SSH host keys are always verified)",
                file.display()
            )
        })?;
        let (raw, sha256) = (key.hostkey(), key.hash_sha256());
        let verdict =
            known_hosts::verify(&String::from_utf8_lossy(&text), host, port, |blob| {
                match (raw, sha256) {
                    (Some(raw), _) => raw == blob,
                    (None, Some(sha256)) => Sha256::digest(blob).as_slice() == sha256,
                    (None, None) => false,
                }
            });
        let who = known_hosts::host_id(host, port);
        let add = format!(
            "check its fingerprint, then add a plain line, e.g. `ssh-keyscan -p {port} {host} >> {}`",
            file.display()
        );
        match verdict {
            known_hosts::Verdict::Known => Ok(()),
            known_hosts::Verdict::Revoked => Err(format!(
                "the host key of {who} is marked @revoked in {}",
                file.display()
            )),
            known_hosts::Verdict::Mismatch => Err(format!(
                "host key verification failed: {who} presented a key that does not match {} \
                 (the server's key changed, or someone is in the middle)",
                file.display()
            )),
            known_hosts::Verdict::Unknown { hashed: true } => Err(format!(
                "{who} has no plain entry in {}; hashed entries (|1|...) are not supported: {add}",
                file.display()
            )),
            known_hosts::Verdict::Unknown { hashed: false } => Err(format!(
                "{who} is not a known host in {}: {add}",
                file.display()
            )),
        }
    }
}

/// First 16 hex digits of the SHA-256 of `url`: the mirror's directory name.
fn mirror_hash(url: &str) -> String {
    let mut hash = hex::encode(Sha256::digest(url.as_bytes()));
    hash.truncate(16);
    hash
}

/// Parses a full commit id and finds it in `repo`.
fn find_commit<'r>(repo: &'r Repository, commit: &str) -> Result<git2::Commit<'r>, GitError> {
    let not_found = || GitError::CommitNotFound {
        commit: commit.to_owned(),
    };
    // `Oid::from_str` would zero-pad an abbreviated id.
    if commit.len() != 40 || !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(not_found());
    }
    let oid = Oid::from_str(commit).map_err(|_| not_found())?;
    match repo.find_object(oid, None) {
        Ok(object) => object.into_commit().map_err(|_| not_found()),
        Err(e) if e.code() == ErrorCode::NotFound => Err(not_found()),
        Err(e) => Err(git_err("find commit", &e)),
    }
}

/// The port of an `ssh://` URL; 22 for scp-like `user@host:path` and the rest.
fn ssh_port(url: &str) -> u16 {
    let Some((scheme, rest)) = url.split_once("://") else {
        return 22;
    };
    if !scheme.contains("ssh") {
        return 22;
    }
    let authority = rest.split('/').next().unwrap_or(rest);
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let port = match host_port.strip_prefix('[') {
        Some(bracketed) => bracketed.split_once("]:").map(|(_, p)| p),
        None => host_port.rsplit_once(':').map(|(_, p)| p),
    };
    port.and_then(|p| p.parse().ok()).unwrap_or(22)
}

/// `url` with the password of its user info, if any, replaced by `***`.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            let masked = if user.len() == userinfo.len() {
                ""
            } else {
                ":***"
            };
            format!("{scheme}://{user}{masked}@{host}{path}")
        }
        None => url.to_owned(),
    }
}

fn git_err(op: &'static str, e: &git2::Error) -> GitError {
    GitError::Git {
        op,
        message: e.message().to_owned(),
    }
}

fn io_err(path: &Path, source: io::Error) -> GitError {
    GitError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Sets libgit2's socket timeouts (connect, and each read), so a server that
/// accepts a connection and then says nothing cannot hang a fetch: the
/// progress callbacks that enforce [`Mirror::fetch`]'s deadline only run when
/// data arrives. Call once at start, before any thread uses git.
pub fn init_socket_timeouts(timeout: Duration) -> Result<(), GitError> {
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    #[expect(
        unsafe_code,
        reason = "libgit2's global options; set once at start, before other threads use git"
    )]
    // SAFETY: these only store an integer in libgit2's global settings; the
    // caller sets them before any other thread runs a git operation.
    unsafe {
        git2::opts::set_server_connect_timeout_in_milliseconds(ms)
            .and_then(|()| git2::opts::set_server_timeout_in_milliseconds(ms))
    }
    .map_err(|e| git_err("set socket timeouts", &e))
}

mod commits;
pub use commits::MIN_ABBREV;
mod known_hosts;
mod worktree;
pub use worktree::CheckoutOutcome;

#[cfg(test)]
mod tests;
