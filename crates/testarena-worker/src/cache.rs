//! The build cache of one worker host (DESIGN section 11, "Build cache"):
//! the build directory a queue's build and image steps left, kept under
//! `cache/build/<key>/build/` and restored into the workspace of a later
//! queue with the same key, which then skips both steps.
//!
//! The key is the SHA-256 of what decides the build's output: the
//! repository's URL, the commit, the target's name, its `build` and
//! `image` argv as configured (placeholders unexpanded, so every slot's
//! workspace gives the same key) and the contents of its `env_script`.
//! Only a build that passed is stored. The cache holds at most
//! `[worker] build_cache_mib` in all: after each store, the entries used
//! least recently (the modification time of their `used` file, touched on
//! every hit) are removed until it fits. An entry is written beside its
//! final name and renamed into place, so a reader sees it whole or not at
//! all; an entry removed while another slot restores it makes that
//! restore fail, and that queue builds instead.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use sha2::{Digest as _, Sha256};
use testarena_domain::config::TargetConfig;
use testarena_domain::paths::Home;

use crate::db;
use crate::logfile::{LogFile, Timeline};
use crate::{Error, Result};

/// The hex digits of a key that name its folder (and the timeline shows).
const KEY_DIGITS: usize = 16;
/// The file whose modification time says when an entry was last used.
const USED: &str = "used";
/// An entry being written that is older than this was abandoned.
const ABANDONED: std::time::Duration = std::time::Duration::from_secs(3600);

/// The build cache under `<home>/cache/build/`.
#[derive(Debug, Clone)]
pub struct BuildCache {
    dir: PathBuf,
    cap_bytes: u64,
}

/// What goes into a build's key.
#[derive(Debug, Clone, Copy)]
pub struct KeyParts<'a> {
    pub repo_url: &'a str,
    pub commit: &'a str,
    pub target_name: &'a str,
    pub target: &'a TargetConfig,
    /// The `env_script`'s contents (empty without one).
    pub env_script: &'a [u8],
}

/// A build's key: [`KEY_DIGITS`] hex digits of a SHA-256.
pub fn key(parts: KeyParts<'_>) -> String {
    let mut h = Sha256::new();
    // Each part with its length first: no two different lists of parts
    // feed the hash the same bytes.
    let mut part = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    part(parts.repo_url.as_bytes());
    part(parts.commit.as_bytes());
    part(parts.target_name.as_bytes());
    part(b"build");
    for arg in &parts.target.build {
        part(arg.as_bytes());
    }
    part(b"image");
    for arg in parts.target.image.iter().flatten() {
        part(arg.as_bytes());
    }
    part(b"env_script");
    part(parts.env_script);
    let digest = h.finalize();
    hex::encode(digest)[..KEY_DIGITS].to_owned()
}

impl BuildCache {
    /// The cache under `dir` (`<home>/cache/build`), `None` when
    /// `cap_mib` is 0 (no cache).
    pub fn new(dir: PathBuf, cap_mib: u64) -> Option<Self> {
        (cap_mib > 0).then(|| Self {
            dir,
            cap_bytes: cap_mib.saturating_mul(1024 * 1024),
        })
    }

    fn entry(&self, key: &str) -> PathBuf {
        self.dir.join(key)
    }

    /// Copies the cached build of `key` into `build_dir` (replacing what
    /// is there) and marks the entry used. `Ok(None)` when nothing is
    /// cached; otherwise the number of files restored.
    pub fn restore(&self, key: &str, build_dir: &Path) -> Result<Option<u64>> {
        let entry = self.entry(key);
        let src = entry.join("build");
        if !src.is_dir() {
            return Ok(None);
        }
        crate::workspace::remove_dir(build_dir)?;
        let files = copy_tree(&src, build_dir)?;
        touch(&entry.join(USED))?;
        Ok(Some(files))
    }

    /// Stores `build_dir` as the build of `key` (if the cache does not
    /// hold it yet and it fits), then evicts the least recently used
    /// entries until the cache fits its cap. Returns whether it stored.
    pub fn store(&self, key: &str, build_dir: &Path) -> Result<bool> {
        let entry = self.entry(key);
        if entry.is_dir() || !build_dir.is_dir() {
            return Ok(false);
        }
        if tree_size(build_dir) > self.cap_bytes {
            return Ok(false);
        }
        std::fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        let tmp = self
            .dir
            .join(format!(".{key}.{}.{}", std::process::id(), nonce()));
        let written = copy_tree(build_dir, &tmp.join("build"))
            .and_then(|_| touch(&tmp.join(USED)))
            .and_then(|()| std::fs::rename(&tmp, &entry).map_err(|e| Error::io(&entry, e)));
        if let Err(e) = written {
            let _ = std::fs::remove_dir_all(&tmp);
            // Another slot stored the same key first: as good.
            if entry.is_dir() {
                return Ok(false);
            }
            return Err(e);
        }
        self.evict()?;
        Ok(true)
    }

    /// Removes the entries used least recently until the rest fit the cap.
    pub fn evict(&self) -> Result<Vec<String>> {
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            return Ok(Vec::new());
        };
        let mut entries: Vec<(SystemTime, u64, String)> = dir
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                // Entries being written start with a dot; one that has not
                // changed for an hour was left by a worker that died.
                if name.starts_with('.') {
                    let stale = e
                        .metadata()
                        .and_then(|m| m.modified())
                        .is_ok_and(|m| m.elapsed().is_ok_and(|age| age > ABANDONED));
                    if stale {
                        let _ = std::fs::remove_dir_all(e.path());
                    }
                    return None;
                }
                let used = std::fs::metadata(e.path().join(USED))
                    .and_then(|m| m.modified())
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                Some((used, tree_size(&e.path()), name))
            })
            .collect();
        let mut total: u64 = entries.iter().map(|(_, size, _)| size).sum();
        entries.sort();
        let mut removed = Vec::new();
        for (_, size, name) in entries {
            if total <= self.cap_bytes {
                break;
            }
            crate::workspace::remove_dir(&self.dir.join(&name))?;
            total = total.saturating_sub(size);
            removed.push(name);
        }
        Ok(removed)
    }
}

/// A few random-enough digits for a temporary name.
fn nonce() -> u128 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// Sets `path`'s modification time to now, making it if needed.
fn touch(path: &Path) -> Result<()> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    file.set_modified(SystemTime::now())
        .map_err(|e| Error::io(path, e))?;
    let _ = (&file).flush();
    Ok(())
}

/// The bytes of the regular files under `dir`.
fn tree_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => tree_size(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

/// Copies the tree `src` to `dest` (made): files with their permissions,
/// symbolic links as links. Returns the number of files and links copied.
fn copy_tree(src: &Path, dest: &Path) -> Result<u64> {
    std::fs::create_dir_all(dest).map_err(|e| Error::io(dest, e))?;
    let mut copied = 0;
    for entry in std::fs::read_dir(src).map_err(|e| Error::io(src, e))? {
        let entry = entry.map_err(|e| Error::io(src, e))?;
        let (from, to) = (entry.path(), dest.join(entry.file_name()));
        let kind = entry.file_type().map_err(|e| Error::io(&from, e))?;
        if kind.is_dir() {
            copied += copy_tree(&from, &to)?;
        } else if kind.is_symlink() {
            let target = std::fs::read_link(&from).map_err(|e| Error::io(&from, e))?;
            std::os::unix::fs::symlink(target, &to).map_err(|e| Error::io(&to, e))?;
            copied += 1;
        } else if kind.is_file() {
            std::fs::copy(&from, &to).map_err(|e| Error::io(&to, e))?;
            copied += 1;
        }
    }
    Ok(copied)
}

/// What the build cache of a queue's run needs to know.
#[derive(Debug)]
pub struct QueueBuild<'a> {
    pub home: &'a Home,
    /// `worker.build_cache_mib`: 0 means no cache.
    pub cap_mib: u64,
    pub queue_id: &'a str,
    /// The submission asked to build anyway.
    pub no_cache: bool,
    pub repo_url: &'a str,
    pub commit: &'a str,
    pub target_name: &'a str,
    pub target: &'a TargetConfig,
    pub build_dir: &'a Path,
    pub timeline: &'a Timeline,
}

/// The build cache as one queue uses it.
#[derive(Debug)]
pub struct CacheUse {
    cache: BuildCache,
    key: String,
    /// Whether the queue's build was restored from it.
    pub restored: bool,
}

/// Looks the queue's build up and, when it is cached (and the queue did
/// not ask for `no_cache`), restores it into the build directory: the
/// timeline says `build cached (<key>)` and `build.log` says so too.
/// `None` without a cache. An entry that cannot be restored is a miss.
pub async fn look_up(q: &QueueBuild<'_>) -> Result<Option<CacheUse>> {
    let Some(cache) = BuildCache::new(q.home.root().join("cache").join("build"), q.cap_mib) else {
        return Ok(None);
    };
    let script = q.target.env_script.clone();
    let env_script = db::blocking(move || {
        Ok(script.map_or_else(Vec::new, |s| std::fs::read(s).unwrap_or_default()))
    })
    .await?;
    let key = key(KeyParts {
        repo_url: q.repo_url,
        commit: q.commit,
        target_name: q.target_name,
        target: q.target,
        env_script: &env_script,
    });
    let mut log = LogFile::append(&q.home.build_log(q.queue_id));
    if q.no_cache {
        log.write(format!("build cache bypassed (no_cache; key {key})\n").as_bytes())
            .await?;
        log.close().await?;
        return Ok(Some(CacheUse {
            cache,
            key,
            restored: false,
        }));
    }
    let (c, k, dir) = (cache.clone(), key.clone(), q.build_dir.to_owned());
    let started = Instant::now();
    let restored = match db::blocking(move || c.restore(&k, &dir)).await {
        Ok(files) => files,
        Err(e) => {
            tracing::warn!(error = %e, "cannot restore the cached build; building");
            None
        }
    };
    if let Some(files) = restored {
        let took = started.elapsed().as_secs_f64();
        q.timeline.line(&format!("build cached ({key})"));
        let line = format!(
            "build cached ({key}): {files} files restored in {took:.2} s; build and image skipped\n"
        );
        log.write(line.as_bytes()).await?;
    }
    log.close().await?;
    Ok(Some(CacheUse {
        cache,
        key,
        restored: restored.is_some(),
    }))
}

/// Keeps a build that passed in the cache; a failure to is logged only.
pub async fn keep(cache: CacheUse, build_dir: &Path, timeline: &Timeline) {
    let (key, dir) = (cache.key.clone(), build_dir.to_owned());
    match db::blocking(move || cache.cache.store(&cache.key, &dir)).await {
        Ok(true) => timeline.line(&format!("build stored in the cache ({key})")),
        Ok(false) => {}
        Err(e) => tracing::warn!(error = %e, "cannot store the build in the cache"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(build: &[&str]) -> TargetConfig {
        TargetConfig {
            env_script: None,
            build: build.iter().map(|s| (*s).to_owned()).collect(),
            image: None,
            qemu: vec!["q".into()],
            fail_on: vec![],
        }
    }

    fn parts<'a>(t: &'a TargetConfig, commit: &'a str, env: &'a [u8]) -> KeyParts<'a> {
        KeyParts {
            repo_url: "/r",
            commit,
            target_name: "lx106",
            target: t,
            env_script: env,
        }
    }

    #[test]
    fn the_key_changes_with_each_part() {
        let (a, b) = (target(&["make"]), target(&["make", "-j2"]));
        let base = key(parts(&a, "c1", b""));
        assert_eq!(base.len(), KEY_DIGITS);
        assert_eq!(base, key(parts(&a, "c1", b"")));
        assert_ne!(base, key(parts(&b, "c1", b"")));
        assert_ne!(base, key(parts(&a, "c2", b"")));
        assert_ne!(base, key(parts(&a, "c1", b"export X=1")));
        let mut imaged = a.clone();
        imaged.image = Some(vec!["pack".into()]);
        assert_ne!(base, key(parts(&imaged, "c1", b"")));
        // Argument boundaries count: ["ab"] is not ["a", "b"].
        assert_ne!(
            key(parts(&target(&["ab"]), "c", b"")),
            key(parts(&target(&["a", "b"]), "c", b""))
        );
    }

    fn build_dir(root: &Path, name: &str, bytes: usize) -> PathBuf {
        let dir = root.join(name);
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub/fw.bin"), vec![7u8; bytes]).unwrap();
        std::os::unix::fs::symlink("sub/fw.bin", dir.join("link")).unwrap();
        dir
    }

    #[test]
    fn a_stored_build_is_restored_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = BuildCache::new(tmp.path().join("cache"), 1).unwrap();
        let src = build_dir(tmp.path(), "b", 10);
        let dest = tmp.path().join("ws/build");
        assert_eq!(cache.restore("k1", &dest).unwrap(), None);
        assert!(cache.store("k1", &src).unwrap());
        assert!(!cache.store("k1", &src).unwrap(), "stored once");
        std::fs::create_dir_all(&dest).unwrap();
        std::fs::write(dest.join("stale"), "x").unwrap();
        assert_eq!(cache.restore("k1", &dest).unwrap(), Some(2));
        assert_eq!(
            std::fs::read(dest.join("sub/fw.bin")).unwrap(),
            vec![7u8; 10]
        );
        assert_eq!(
            std::fs::read_link(dest.join("link")).unwrap(),
            Path::new("sub/fw.bin")
        );
        assert!(!dest.join("stale").exists(), "the build dir is replaced");
        // A change in the restored copy leaves the cache alone.
        std::fs::write(dest.join("sub/fw.bin"), "changed").unwrap();
        let again = tmp.path().join("ws2/build");
        cache.restore("k1", &again).unwrap();
        assert_eq!(
            std::fs::read(again.join("sub/fw.bin")).unwrap(),
            vec![7u8; 10]
        );
        assert!(BuildCache::new(tmp.path().join("off"), 0).is_none());
    }

    #[test]
    fn the_least_recently_used_go_first_and_too_big_is_never_stored() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = BuildCache::new(tmp.path().join("cache"), 1).unwrap();
        let third = 400 * 1024;
        for name in ["a", "b", "c"] {
            let src = build_dir(tmp.path(), name, third);
            assert!(cache.store(name, &src).unwrap(), "{name}");
            // Distinct use times on filesystems with coarse ones.
            let used = cache.entry(name).join(USED);
            let when = SystemTime::now()
                - std::time::Duration::from_secs(match name {
                    "a" => 30,
                    "b" => 20,
                    _ => 10,
                });
            std::fs::File::options()
                .write(true)
                .open(&used)
                .unwrap()
                .set_modified(when)
                .unwrap();
        }
        // Three of 400 KiB exceed 1 MiB: "a", used longest ago, went when
        // "c" came.
        let names = |c: &BuildCache| {
            let mut n: Vec<String> = std::fs::read_dir(&c.dir)
                .unwrap()
                .flatten()
                .map(|e| e.file_name().into_string().unwrap())
                .collect();
            n.sort();
            n
        };
        assert_eq!(names(&cache).len(), 2, "{:?}", names(&cache));
        cache.restore("b", &tmp.path().join("x")).unwrap();
        let d = build_dir(tmp.path(), "d", third);
        assert!(cache.store("d", &d).unwrap());
        assert_eq!(names(&cache), ["b", "d"]);
        let huge = build_dir(tmp.path(), "huge", 2 * 1024 * 1024);
        assert!(!cache.store("huge", &huge).unwrap());
        assert_eq!(names(&cache), ["b", "d"]);
        // A half-written entry of a dead worker goes after an hour, one
        // being written now stays.
        let (old, new) = (cache.dir.join(".x.1.1"), cache.dir.join(".y.1.2"));
        std::fs::create_dir_all(&old).unwrap();
        std::fs::create_dir_all(&new).unwrap();
        std::fs::File::open(&old)
            .unwrap()
            .set_modified(SystemTime::now() - 2 * ABANDONED)
            .unwrap();
        cache.evict().unwrap();
        assert!(!old.exists() && new.exists());
    }
}
